"""Image preprocessing ops, as TensorFlow functions for tf.data and export.

Evaluation follows CLIP's release (via torchvision on PIL images) to within
a grey level: resize the shorter side to the target with PIL's antialiased
bicubic filter, centre crop, scale to [0, 1], normalise with CLIP's mean and
std. Training replaces resize
and crop by a random resized crop of 90–100% of the area (Radford et al.,
2021, used only this augmentation; no flips).
"""

import math

import numpy as np
import tensorflow as tf

from keras_clip.models.clip_presets import CLIP_MEAN, CLIP_STD


def decode_rgb(image_bytes, dct_method="INTEGER_ACCURATE"):
    """JPEG/PNG/GIF (first frame)/BMP bytes → `(H, W, 3)` uint8.

    Grey images are repeated to RGB, alpha is dropped, 16-bit PNGs are
    scaled to 8 bits. JPEGs use the accurate integer DCT by default, which
    decodes bit-identically to PIL (TensorFlow's default, the fast DCT,
    differs by about 1.3 levels per pixel); `"INTEGER_FAST"` trades that for
    speed. Raises `tf.errors.InvalidArgumentError` on bytes that are no image.
    """
    image = tf.cond(
        tf.io.is_jpeg(image_bytes),
        lambda: tf.io.decode_jpeg(image_bytes, channels=3, dct_method=dct_method),
        lambda: tf.io.decode_image(
            image_bytes, channels=3, dtype=tf.uint8, expand_animations=False
        ),
    )
    image.set_shape([None, None, 3])
    return image


# The gathered taps take about 12 floats per input pixel, whatever the scale
# (fewer output columns, more taps each). Larger images take TensorFlow's own
# antialiased resize: slower, memory-frugal, within ~0.002 of PIL.
MAX_GATHER_PIXELS = 4_000_000


def _bicubic(x):
    """Keys' cubic kernel with a = -0.5, the one PIL uses."""
    x = tf.abs(x)
    near = ((1.5 * x - 2.5) * x) * x + 1.0
    far = ((-0.5 * x + 2.5) * x - 4.0) * x + 2.0
    return tf.where(x < 1.0, near, tf.where(x < 2.0, far, tf.zeros_like(x)))


def _taps(in_size, out_size, start, span):
    """PIL's resampling taps of one axis: `(indices, weights)`, both `(out, K)`.

    Output pixel `i` samples the window `[start, start + span)` of the input
    around `start + (i + 0.5) * span / out_size`; when shrinking, the kernel
    is widened by the scale, which is what antialiases.
    """
    in_size = tf.cast(in_size, tf.float32)
    scale = tf.cast(span, tf.float32) / tf.cast(out_size, tf.float32)
    filter_scale = tf.maximum(scale, 1.0)
    support = 2.0 * filter_scale
    centers = tf.cast(start, tf.float32) + (tf.range(out_size, dtype=tf.float32) + 0.5) * scale
    low = tf.maximum(tf.floor(centers - support + 0.5), 0.0)  # (out,)
    high = tf.minimum(tf.floor(centers + support + 0.5), in_size)
    num_taps = tf.cast(tf.math.ceil(2.0 * support), tf.int32) + 1
    positions = low[:, None] + tf.range(num_taps, dtype=tf.float32)[None]  # (out, K)
    weights = _bicubic((positions - centers[:, None] + 0.5) / filter_scale)
    weights = tf.where(positions < high[:, None], weights, 0.0)
    weights /= tf.reduce_sum(weights, axis=1, keepdims=True)
    indices = tf.cast(tf.minimum(positions, in_size - 1.0), tf.int32)
    return indices, weights


def _resample_rows(pixels, taps):
    """Resamples axis 0 of `(in, ...)` pixels with `(out, K)` taps, to 8 bits."""
    indices, weights = taps
    # Whole rows are contiguous: gathering them along axis 0 is a plain copy,
    # several times faster than gathering along an inner axis.
    gathered = tf.gather(pixels, indices)  # (out, K, ...)
    flat = tf.reshape(gathered, [tf.shape(indices)[0], tf.shape(indices)[1], -1])
    resampled = tf.einsum("okr,ok->or", flat, weights)  # (out, rest)
    resampled = tf.reshape(resampled, tf.concat([[-1], tf.shape(pixels)[1:]], 0))
    # PIL keeps 8-bit pixels between its horizontal and vertical passes.
    return tf.clip_by_value(tf.round(resampled), 0.0, 255.0)


def resize_bicubic(image, height, width, box=None):
    """Antialiased bicubic resize of `box` to `(height, width)`, as PIL does it.

    `box = (top, left, box_height, box_width)` (default: the whole image).
    Separable: a horizontal then a vertical pass, each gathering PIL's taps
    and weights and rounding to 8 bits, so the result is within a grey level
    or so of `PIL.Image.resize(..., BICUBIC, box=...)`, and several times
    Returns float32 in [0, 255]. About half the speed of
    `tf.image.resize(antialias=True)`, whose pixels are ~0.002 (normalised)
    off PIL's: evaluation uses this, training augmentation the faster one.
    """
    shape = tf.shape(image)
    if box is None:
        box = (0, 0, shape[0], shape[1])
    top, left, box_height, box_width = box
    pixels = tf.cast(image, tf.float32)

    def gather_resize():
        columns = tf.transpose(pixels, [1, 0, 2])  # (W, H, C)
        columns = _resample_rows(columns, _taps(shape[1], width, left, box_width))
        rows = tf.transpose(columns, [1, 0, 2])  # (H, width, C)
        return _resample_rows(rows, _taps(shape[0], height, top, box_height))

    def library_resize():
        crop = pixels[top : top + box_height, left : left + box_width]
        resized = tf.image.resize(crop, [height, width], "bicubic", antialias=True)
        return tf.clip_by_value(tf.round(resized), 0.0, 255.0)

    small = box_height * box_width <= MAX_GATHER_PIXELS
    resized = tf.cond(small, gather_resize, library_resize)
    return tf.ensure_shape(resized, [None, None, image.shape[-1]])


def resize_shorter_side(image, size):
    """Resizes so the shorter side is `size`, keeping the aspect ratio.

    The longer side is `int(size * long / short)`, as torchvision computes
    it; `resize_bicubic` does the rest. Returns float32 in [0, 255].
    """
    shape = tf.shape(image)
    height, width = tf.cast(shape[0], tf.float64), tf.cast(shape[1], tf.float64)
    short = tf.minimum(height, width)
    new_height = tf.cast(tf.math.floor(size * height / short), tf.int32)
    new_width = tf.cast(tf.math.floor(size * width / short), tf.int32)
    # The shorter side is exactly `size` (floor could lose it to rounding).
    new_height = tf.where(height <= width, size, new_height)
    new_width = tf.where(width < height, size, new_width)
    return resize_bicubic(image, new_height, new_width)


def center_crop(image, size):
    """The central `size × size` window (offsets rounded as torchvision does)."""
    shape = tf.shape(image)
    top = tf.cast(tf.round((shape[0] - size) / 2), tf.int32)
    left = tf.cast(tf.round((shape[1] - size) / 2), tf.int32)
    return image[top : top + size, left : left + size]


def normalize(image):
    """`[0, 255]` pixels → CLIP's normalised float32 inputs.

    One multiply-add, `(x / 255 - mean) / std` rearranged. When the shape is
    static, the per-channel factors are laid out at the image's full size:
    TensorFlow's CPU kernels broadcast a trailing axis of 3 several times
    slower than they multiply two tensors of one shape.
    """
    image = tf.cast(image, tf.float32)
    scale = 1.0 / (255.0 * np.array(CLIP_STD, np.float32))
    offset = -np.array(CLIP_MEAN, np.float32) / np.array(CLIP_STD, np.float32)
    if image.shape.is_fully_defined():
        scale = np.broadcast_to(scale, image.shape)
        offset = np.broadcast_to(offset, image.shape)
    return image * scale + offset


def random_resized_crop_box(height, width, seed, scale=(0.9, 1.0), ratio=(3 / 4, 4 / 3)):
    """A random crop `(top, left, crop_height, crop_width)`.

    Its area is a uniform fraction in `scale` of the image's and its aspect
    ratio (width / height) log-uniform in `ratio`, clamped to the ratios at
    which a box of that area fits: the area is kept, never the ratio, so
    a tall or wide image still gets 90–100% of itself. `seed` is a `(2,)`
    integer tensor: the same seed gives the same box (stateless draws), so
    a resumed run crops each example as the uninterrupted one did.
    """
    seeds = tf.random.experimental.stateless_split(seed, 4)
    height_f, width_f = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    target = height_f * width_f * tf.random.stateless_uniform([], seeds[0], scale[0], scale[1])
    log_ratio = tf.random.stateless_uniform(
        [], seeds[1], math.log(ratio[0]), math.log(ratio[1])
    )
    # width = sqrt(target * r) <= W and height = sqrt(target / r) <= H.
    log_ratio = tf.clip_by_value(
        log_ratio,
        tf.math.log(target / height_f**2),
        tf.math.log(width_f**2 / target),
    )
    aspect = tf.exp(log_ratio)
    crop_width = tf.cast(tf.round(tf.sqrt(target * aspect)), tf.int32)
    crop_height = tf.cast(tf.round(tf.sqrt(target / aspect)), tf.int32)
    crop_width = tf.clip_by_value(crop_width, 1, width)
    crop_height = tf.clip_by_value(crop_height, 1, height)
    top = tf.random.stateless_uniform([], seeds[2], 0, height - crop_height + 1, tf.int32)
    left = tf.random.stateless_uniform([], seeds[3], 0, width - crop_width + 1, tf.int32)
    return top, left, crop_height, crop_width


def preprocess_for_eval(image_bytes, image_size):
    """Bytes → `(image_size, image_size, 3)` float32: resize, centre crop, normalise."""
    image = resize_shorter_side(decode_rgb(image_bytes), image_size)
    image = center_crop(image, image_size)
    image.set_shape([image_size, image_size, 3])
    return normalize(image)


def preprocess_for_train(image_bytes, image_size, seed, scale=(0.9, 1.0)):
    """Bytes → `(image_size, image_size, 3)` float32: random resized crop, normalise.

    `seed`: a `(2,)` integer tensor (see `random_resized_crop_box`).
    Augmentation needs no pixel parity with PIL, so this takes the faster
    JPEG DCT and TensorFlow's own antialiased resize.
    """
    image = decode_rgb(image_bytes, dct_method="INTEGER_FAST")
    shape = tf.shape(image)
    top, left, crop_height, crop_width = random_resized_crop_box(
        shape[0], shape[1], seed, scale
    )
    image = image[top : top + crop_height, left : left + crop_width]
    image = tf.image.resize(image, [image_size, image_size], "bicubic", antialias=True)
    image.set_shape([image_size, image_size, 3])
    return normalize(image)
