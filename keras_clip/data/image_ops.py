"""Image preprocessing ops, as TensorFlow functions for tf.data and export.

Evaluation follows CLIP's release (via torchvision on PIL images): resize the
shorter side to the target with antialiased bicubic filtering, centre crop,
scale to [0, 1], normalise with CLIP's mean and std. Training replaces resize
and crop by a random resized crop of 90–100% of the area (Radford et al.,
2021, used only this augmentation; no flips).
"""

import math

import tensorflow as tf

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


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


def resize_shorter_side(image, size):
    """Resizes so the shorter side is `size`, keeping the aspect ratio.

    The longer side is `int(size * long / short)`, as torchvision computes
    it. Bicubic with antialiasing, then rounded and clipped to [0, 255]: the
    8-bit result PIL gives, so pixels match CLIP's reference preprocessing.
    Returns float32.
    """
    shape = tf.shape(image)
    height, width = tf.cast(shape[0], tf.float64), tf.cast(shape[1], tf.float64)
    short = tf.minimum(height, width)
    new_height = tf.cast(tf.math.floor(size * height / short), tf.int32)
    new_width = tf.cast(tf.math.floor(size * width / short), tf.int32)
    # The shorter side is exactly `size` (floor could lose it to rounding).
    new_height = tf.where(height <= width, size, new_height)
    new_width = tf.where(width < height, size, new_width)
    resized = tf.image.resize(
        image, tf.stack([new_height, new_width]), method="bicubic", antialias=True
    )
    return tf.clip_by_value(tf.round(resized), 0.0, 255.0)


def center_crop(image, size):
    """The central `size × size` window (offsets rounded as torchvision does)."""
    shape = tf.shape(image)
    top = tf.cast(tf.round((shape[0] - size) / 2), tf.int32)
    left = tf.cast(tf.round((shape[1] - size) / 2), tf.int32)
    return image[top : top + size, left : left + size]


def normalize(image):
    """`[0, 255]` pixels → CLIP's normalised float32 inputs."""
    image = tf.cast(image, tf.float32) / 255.0
    return (image - CLIP_MEAN) / CLIP_STD


def random_resized_crop_box(height, width, scale=(0.9, 1.0), ratio=(3 / 4, 4 / 3), seed=None):
    """A random crop `(top, left, crop_height, crop_width)`.

    Its area is a uniform fraction in `scale` of the image's and its aspect
    ratio (width / height) log-uniform in `ratio`, clamped to the ratios at
    which a box of that area fits: the area is kept, never the ratio, so
    a tall or wide image still gets 90–100% of itself.
    """
    height_f, width_f = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    target = height_f * width_f * tf.random.uniform([], scale[0], scale[1], seed=seed)
    log_ratio = tf.random.uniform([], math.log(ratio[0]), math.log(ratio[1]), seed=seed)
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
    top = tf.random.uniform([], 0, height - crop_height + 1, tf.int32, seed=seed)
    left = tf.random.uniform([], 0, width - crop_width + 1, tf.int32, seed=seed)
    return top, left, crop_height, crop_width


def preprocess_for_eval(image_bytes, image_size):
    """Bytes → `(image_size, image_size, 3)` float32: resize, centre crop, normalise."""
    image = resize_shorter_side(decode_rgb(image_bytes), image_size)
    image = center_crop(image, image_size)
    image.set_shape([image_size, image_size, 3])
    return normalize(image)


def preprocess_for_train(image_bytes, image_size, scale=(0.9, 1.0), seed=None):
    """Bytes → `(image_size, image_size, 3)` float32: random resized crop, normalise."""
    image = decode_rgb(image_bytes)
    shape = tf.shape(image)
    top, left, crop_height, crop_width = random_resized_crop_box(
        shape[0], shape[1], scale, seed=seed
    )
    image = image[top : top + crop_height, left : left + crop_width]
    image = tf.image.resize(
        image, [image_size, image_size], method="bicubic", antialias=True
    )
    image = tf.clip_by_value(tf.round(image), 0.0, 255.0)
    image.set_shape([image_size, image_size, 3])
    return normalize(image)
