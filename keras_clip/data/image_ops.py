"""Image preprocessing ops, as TensorFlow functions for tf.data and export.

Evaluation follows CLIP's release (via torchvision on PIL images) to within
a grey level: resize the shorter side to the target with PIL's antialiased
bicubic filter, centre crop, scale to [0, 1], normalise with the model's
mean and std (CLIP's by default; see `keras_clip.preprocessing`). Resize
and crop are one step that computes only the crop's pixels, so a 1000×1
image costs a 224×224 output, not its 224×224,000 resize. Training
replaces resize and crop by a random resized crop of 90–100% of the area
(Radford et al., 2021, used only this augmentation; no flips).

Decompression bombs are refused before decoding: see `image_headers`
(`MAX_IMAGE_PIXELS`, `max_pixels=`).
"""

import collections
import math

import numpy as np
import tensorflow as tf

from keras_clip.data.image_headers import (  # noqa: F401  (declared_size: public here too)
    MAX_IMAGE_PIXELS,
    declared_size,
    refuse_oversized,
)
from keras_clip.preprocessing import CLIP_MEAN, CLIP_STD


def decode_rgb(image_bytes, dct_method="INTEGER_ACCURATE", max_pixels=MAX_IMAGE_PIXELS):
    """JPEG/PNG/GIF (first frame)/BMP/WebP/JPEG XL bytes → `(H, W, 3)` uint8.

    Grey images are repeated to RGB, alpha is dropped, 16-bit PNGs are
    scaled to 8 bits. JPEGs use the accurate integer DCT by default, which
    decodes bit-identically to PIL (TensorFlow's default, the fast DCT,
    differs by about 1.3 levels per pixel); `"INTEGER_FAST"` trades that for
    speed. Raises `tf.errors.InvalidArgumentError` on bytes that are no
    image, and, before decoding, on an image whose header declares more
    than `max_pixels` pixels (see the module docstring).
    """
    with tf.control_dependencies([refuse_oversized(image_bytes, max_pixels)]):
        image = tf.cond(
            tf.io.is_jpeg(image_bytes),
            lambda: tf.io.decode_jpeg(image_bytes, channels=3, dct_method=dct_method),
            lambda: tf.io.decode_image(
                image_bytes, channels=3, dtype=tf.uint8, expand_animations=False
            ),
        )
    image.set_shape([None, None, 3])
    return image


# Boxes up to this many pixels resize through PIL's own taps; larger ones
# take TensorFlow's antialiased kernel: faster there, within ~0.002 of PIL.
MAX_GATHER_PIXELS = 4_000_000
# Taps are gathered and summed a group at a time, at most this many values
# each (~20 MB with their float copy): all at once, they would be ~4 float
# copies of the input (shrinking 100× takes ~400 taps per output pixel).
MAX_GATHERED = 4_000_000

# One axis of a resize: the window `[start, start + span)` of `in_size` input
# pixels resized to `out_size`, of which outputs `[offset, offset + count)`
# are computed.
_Axis = collections.namedtuple("_Axis", "in_size out_size start span offset count")


def _bicubic(x):
    """Keys' cubic kernel with a = -0.5, the one PIL uses."""
    x = tf.abs(x)
    near = ((1.5 * x - 2.5) * x) * x + 1.0
    far = ((-0.5 * x + 2.5) * x - 4.0) * x + 2.0
    return tf.where(x < 1.0, near, tf.where(x < 2.0, far, tf.zeros_like(x)))


def _taps(axis):
    """PIL's resampling taps of one `_Axis`: `(indices, weights)`, both `(count, K)`.

    Output pixel `i` samples the input around `start + (i + 0.5) * span /
    out_size`; when shrinking, the kernel is widened by the scale, which is
    what antialiases. Each output's taps depend on its position alone, so
    building those of `[offset, offset + count)` gives exactly those pixels
    of the whole resize. Positions in float64, as PIL computes them.
    """
    in_size = tf.cast(axis.in_size, tf.float64)
    scale = tf.cast(axis.span, tf.float64) / tf.cast(axis.out_size, tf.float64)
    filter_scale = tf.maximum(scale, 1.0)
    support = 2.0 * filter_scale
    outputs = tf.cast(axis.offset, tf.float64) + tf.range(axis.count, dtype=tf.float64)
    centers = tf.cast(axis.start, tf.float64) + (outputs + 0.5) * scale  # (count,)
    low = tf.maximum(tf.floor(centers - support + 0.5), 0.0)
    high = tf.minimum(tf.floor(centers + support + 0.5), in_size)
    num_taps = tf.cast(tf.math.ceil(2.0 * support), tf.int32) + 1
    positions = low[:, None] + tf.range(num_taps, dtype=tf.float64)[None]  # (count, K)
    weights = _bicubic((positions - centers[:, None] + 0.5) / filter_scale)
    weights = tf.where(positions < high[:, None], weights, 0.0)
    weights /= tf.reduce_sum(weights, axis=1, keepdims=True)
    indices = tf.cast(tf.minimum(positions, in_size - 1.0), tf.int32)
    return indices, tf.cast(weights, tf.float32)


def _resample_rows(pixels, indices, weights):
    """Resamples axis 0 of `(in, ...)` pixels with `(out, K)` taps, to uint8.

    The taps are gathered and summed a group at a time, `MAX_GATHERED`
    values at most: the cost is the output's, whatever the scale.
    """
    flat = tf.reshape(pixels, [tf.shape(pixels)[0], -1])  # (in, rest)
    num_out, num_taps = tf.shape(indices)[0], tf.shape(indices)[1]
    values_per_tap = tf.cast(num_out, tf.int64) * tf.cast(tf.shape(flat)[1], tf.int64)
    group = MAX_GATHERED // tf.maximum(values_per_tap, 1)
    group = tf.cast(tf.clip_by_value(group, 1, 1 << 16), tf.int32)

    def add_group(first, total):
        # Whole rows are contiguous: gathering them along axis 0 is a plain
        # copy, several times faster than gathering along an inner axis.
        taken = tf.gather(flat, indices[:, first : first + group])  # (out, G, rest)
        # A batched (1, G) @ (G, rest) product: twice as fast as the einsum.
        summed = tf.matmul(weights[:, None, first : first + group], tf.cast(taken, tf.float32))
        return first + group, total + summed[:, 0]  # (out, rest)

    total = tf.zeros([num_out, tf.shape(flat)[1]])  # (out, rest)
    _, total = tf.while_loop(lambda first, _: first < num_taps, add_group, (0, total))
    resampled = tf.reshape(total, tf.concat([[-1], tf.shape(pixels)[1:]], 0))
    # PIL keeps 8-bit pixels between its horizontal and vertical passes.
    return tf.cast(tf.clip_by_value(tf.round(resampled), 0.0, 255.0), tf.uint8)


def _gather_resize(image, rows, columns):
    """PIL's two passes over the input under the window's taps; float32.

    Horizontal first, but vertical first where the height loses more than
    twice as many pixels as the width: the order Pillow 13 takes, found by
    resizing random images to hundreds of shapes and matching each result
    with the two orders (it changes the 8-bit rounding between the passes).
    """
    row_indices, row_weights = _taps(rows)  # (window height, K)
    column_indices, column_weights = _taps(columns)  # (window width, K)
    # Only the rows and columns that some tap reads (PIL also skips the rest).
    top, bottom = tf.reduce_min(row_indices), tf.reduce_max(row_indices) + 1
    left, right = tf.reduce_min(column_indices), tf.reduce_max(column_indices) + 1
    region = image[top:bottom, left:right]  # (rows, cols, C)

    def horizontal(pixels):
        pixels = _resample_rows(tf.transpose(pixels, [1, 0, 2]), column_indices - left,
                                column_weights)  # (width, rows, C)
        return tf.transpose(pixels, [1, 0, 2])

    def vertical(pixels):
        return _resample_rows(pixels, row_indices - top, row_weights)

    height_lost = tf.cast(rows.span, tf.float64) - tf.cast(rows.out_size, tf.float64)
    width_lost = tf.cast(columns.span, tf.float64) - tf.cast(columns.out_size, tf.float64)
    vertical_first = tf.logical_and(height_lost > 0, height_lost > 2 * width_lost)
    resized = tf.cond(vertical_first, lambda: horizontal(vertical(region)),
                      lambda: vertical(horizontal(region)))
    return tf.cast(resized, tf.float32)


def _kernel_extent(axis):
    """`(first, end, scale, translation)`: the inputs under an `_Axis`'s
    window, and the ScaleAndTranslate arguments that map the window onto them."""
    scale = tf.cast(axis.out_size, tf.float64) / tf.cast(axis.span, tf.float64)
    reach = 2.0 * tf.maximum(1.0 / scale, 1.0) + 1.0  # the kernel's radius, and a pixel
    start, offset = tf.cast(axis.start, tf.float64), tf.cast(axis.offset, tf.float64)
    first_center = start + (offset + 0.5) / scale
    last_center = start + (offset + tf.cast(axis.count, tf.float64) - 0.5) / scale
    first = tf.cast(tf.maximum(tf.floor(first_center - reach), 0.0), tf.int32)
    end = tf.cast(tf.minimum(tf.math.ceil(last_center + reach) + 1.0,
                             tf.cast(axis.in_size, tf.float64)), tf.int32)
    # The op samples output j at (j + 0.5 - translation) / scale: make that
    # the window's own sample, in the coordinates of the cut input.
    translation = -(offset + (start - tf.cast(first, tf.float64)) * scale)
    return first, end, tf.cast(scale, tf.float32), tf.cast(translation, tf.float32)


def _library_resize(image, rows, columns):
    """The window by TensorFlow's antialiased bicubic kernel; float32.

    ScaleAndTranslate is what `tf.image.resize(antialias=True)` runs; with
    the full resize's scale and a translation it produces the window alone.
    It keeps an `(out height, in width)` float intermediate, so the input is
    first cut to the rows and columns under the kernel (which, as PIL's
    taps, may read past the box).
    """
    top, bottom, row_scale, row_shift = _kernel_extent(rows)
    left, right, column_scale, column_shift = _kernel_extent(columns)
    region = image[top:bottom, left:right][None]  # (1, rows, cols, C)
    resized = tf.raw_ops.ScaleAndTranslate(
        images=region, size=tf.stack([rows.count, columns.count]),
        scale=tf.stack([row_scale, column_scale]),
        translation=tf.stack([row_shift, column_shift]),
        kernel_type="keyscubic", antialias=True)[0]
    return tf.clip_by_value(tf.round(resized), 0.0, 255.0)


def resize_bicubic(image, height, width, box=None, window=None):
    """Antialiased bicubic resize of `box` to `(height, width)`, as PIL does it.

    `box = (top, left, box_height, box_width)` (default: the whole image).
    `window = (top, left, window_height, window_width)` in the output: only
    that part of the resize is computed and returned, the same pixels as
    cropping the whole resize (default: all of it). Separable: a horizontal
    then a vertical pass, each with PIL's taps and rounding to 8 bits, so the
    result is within a grey level or so of `PIL.Image.resize(..., BICUBIC,
    box=...)`. Boxes over `MAX_GATHER_PIXELS` take TensorFlow's kernel (see
    `_library_resize`). Returns float32 in [0, 255].
    """
    shape = tf.shape(image)
    top, left, box_height, box_width = (0, 0, shape[0], shape[1]) if box is None else box
    window = (0, 0, height, width) if window is None else window
    rows = _Axis(shape[0], height, top, box_height, window[0], window[2])
    columns = _Axis(shape[1], width, left, box_width, window[1], window[3])
    small = tf.cast(box_height, tf.int64) * tf.cast(box_width, tf.int64) <= MAX_GATHER_PIXELS
    resized = tf.cond(small, lambda: _gather_resize(image, rows, columns),
                      lambda: _library_resize(image, rows, columns))
    return tf.ensure_shape(resized, [None, None, image.shape[-1]])


def _shorter_side_size(height, width, size):
    """torchvision's resize: the shorter side `size`, the longer `int(size * long / short)`."""
    height, width = tf.cast(height, tf.float64), tf.cast(width, tf.float64)
    short = tf.minimum(height, width)
    new_height = tf.cast(tf.math.floor(size * height / short), tf.int32)
    new_width = tf.cast(tf.math.floor(size * width / short), tf.int32)
    # The shorter side is exactly `size` (floor could lose it to rounding).
    new_height = tf.where(height <= width, size, new_height)
    new_width = tf.where(width < height, size, new_width)
    return new_height, new_width


def _center_offset(length, size):
    """Where a centred `size` window starts in `length` (rounded as torchvision does)."""
    return tf.cast(tf.round((length - size) / 2), tf.int32)


def resize_shorter_side(image, size):
    """Resizes so the shorter side is `size`, keeping the aspect ratio.

    The longer side is `int(size * long / short)`, as torchvision computes
    it; `resize_bicubic` does the rest. Returns float32 in [0, 255].
    """
    shape = tf.shape(image)
    return resize_bicubic(image, *_shorter_side_size(shape[0], shape[1], size))


def center_crop(image, size):
    """The central `size × size` window (offsets rounded as torchvision does)."""
    shape = tf.shape(image)
    top, left = _center_offset(shape[0], size), _center_offset(shape[1], size)
    return image[top : top + size, left : left + size]


def resize_and_center_crop(image, size):
    """`center_crop(resize_shorter_side(image, size), size)`, computing only the crop.

    The same pixels; its cost is the crop's, not the resize's (224 ×
    224,000 pixels for a 1000×1 image). Returns `(size, size, C)` float32.
    """
    shape = tf.shape(image)
    new_height, new_width = _shorter_side_size(shape[0], shape[1], size)
    window = (_center_offset(new_height, size), _center_offset(new_width, size), size, size)
    resized = resize_bicubic(image, new_height, new_width, window=window)
    return tf.ensure_shape(resized, [size, size, image.shape[-1]])


def normalize(image, mean=CLIP_MEAN, std=CLIP_STD):
    """`[0, 255]` pixels → normalised float32 inputs, `(x / 255 - mean) / std`.

    One multiply-add, `(x / 255 - mean) / std` rearranged. When the shape is
    static, the per-channel factors are laid out at the image's full size:
    TensorFlow's CPU kernels broadcast a trailing axis of 3 several times
    slower than they multiply two tensors of one shape.
    """
    image = tf.cast(image, tf.float32)
    scale = 1.0 / (255.0 * np.array(std, np.float32))
    offset = -np.array(mean, np.float32) / np.array(std, np.float32)
    if image.shape.is_fully_defined():
        scale = np.broadcast_to(scale, image.shape)
        offset = np.broadcast_to(offset, image.shape)
    return image * scale + offset


def random_resized_crop_box(height, width, seed, scale=(0.9, 1.0), ratio=(3 / 4, 4 / 3)):
    """A random crop `(top, left, crop_height, crop_width)`.

    Its area is a uniform fraction in `scale` of the image's and its aspect
    ratio (width / height) log-uniform in `ratio`, clamped to the ratios at
    which a box of that area fits: the area is kept, never the ratio, so
    a tall or wide image still gets 90–100% of itself (a 1000×1 image gets
    about 950×1). `seed` is a `(2,)` integer tensor: the same seed gives the
    same box (stateless draws), so a resumed run crops each example as the
    uninterrupted one did.
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


def _resize_antialiased(image, size):
    """`tf.image.resize(image, [size, size], "bicubic", antialias=True)`, bounded.

    Its kernel resizes the height first and keeps a `(size, width)` float
    intermediate: 80 MB for a 30000×2 crop. Where that outweighs a copy of
    the image (a byte per value) plus the `(size, height)` intermediate,
    the image is resized transposed.
    """
    def resize(pixels):
        return tf.image.resize(pixels, [size, size], "bicubic", antialias=True)

    height, width = tf.unstack(tf.cast(tf.shape(image)[:2], tf.int64))
    transpose = 4 * size * width > height * width + 4 * size * height
    return tf.cond(transpose,
                   lambda: tf.transpose(resize(tf.transpose(image, [1, 0, 2])), [1, 0, 2]),
                   lambda: resize(image))


def _finish(image, mean, std, normalized):
    """Normalised float32, or (`normalized=False`) pixels rounded to uint8.

    Rounding changes nothing after PIL's resize (already 8-bit) and, after
    the antialiased training resize, keeps 8 bits as PIL's would.
    """
    if normalized:
        return normalize(image, mean, std)
    return tf.cast(tf.clip_by_value(tf.round(tf.cast(image, tf.float32)), 0.0, 255.0),
                   tf.uint8)


def preprocess_for_eval(image_bytes, image_size, max_pixels=MAX_IMAGE_PIXELS,
                        mean=CLIP_MEAN, std=CLIP_STD, normalized=True,
                        resize="shortest_side_then_center_crop"):
    """Bytes → `(image_size, image_size, 3)` float32: resize, centre crop, normalise.

    Images declaring more than `max_pixels` are refused (see `decode_rgb`).
    `normalized=False` stops before normalising: uint8 pixels, which a
    `CLIPModel` normalises itself (a quarter of the bytes to move).
    `resize="squash"` resizes the whole image to the square instead, aspect
    ratio not kept, as SigLIP's released preprocessing does (no crop).
    """
    image = decode_rgb(image_bytes, max_pixels=max_pixels)
    if resize == "squash":
        image = resize_bicubic(image, image_size, image_size)
    else:
        image = resize_and_center_crop(image, image_size)
    image.set_shape([image_size, image_size, 3])
    return _finish(image, mean, std, normalized)


def preprocess_for_train(image_bytes, image_size, seed, scale=(0.9, 1.0),
                         max_pixels=MAX_IMAGE_PIXELS, mean=CLIP_MEAN, std=CLIP_STD,
                         normalized=True):
    """Bytes → `(image_size, image_size, 3)` float32: random resized crop, normalise.

    `seed`: a `(2,)` integer tensor (see `random_resized_crop_box`).
    Augmentation needs no pixel parity with PIL, so this takes the faster
    JPEG DCT and TensorFlow's own antialiased resize. Images declaring more
    than `max_pixels` are refused (see `decode_rgb`). `normalized=False`:
    uint8 pixels, as in `preprocess_for_eval`.
    """
    image = decode_rgb(image_bytes, dct_method="INTEGER_FAST", max_pixels=max_pixels)
    shape = tf.shape(image)
    top, left, crop_height, crop_width = random_resized_crop_box(
        shape[0], shape[1], seed, scale
    )
    image = image[top : top + crop_height, left : left + crop_width]  # frees the rest, eagerly
    image = _resize_antialiased(image, image_size)
    image.set_shape([image_size, image_size, 3])
    return _finish(image, mean, std, normalized)
