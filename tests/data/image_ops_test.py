import io
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import sklearn.datasets
import tensorflow as tf
from PIL import Image

from keras_clip.data import image_ops

pytestmark = pytest.mark.backend_independent


def encode(image, format, **options):
    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()


def real_photos():
    """scikit-learn's two 640×427 photos, and 500×375 crops re-encoded from them."""
    rng = np.random.default_rng(0)
    photos = []
    for path in sklearn.datasets.load_sample_images().filenames:
        with open(path, "rb") as file:
            photos.append(file.read())
        image = Image.open(path).convert("RGB")
        for _ in range(2):
            left, top = rng.integers(0, 140), rng.integers(0, 52)
            crop = image.crop((left, top, left + 500, top + 375))
            photos.append(encode(crop, "JPEG", quality=90))
    return photos


def reference_eval(image_bytes, size):
    """CLIP's released preprocessing: PIL bicubic resize, centre crop, normalise."""
    image = Image.open(io.BytesIO(image_bytes)).convert("RGB")
    width, height = image.size
    if width <= height:
        new_size = (size, int(size * height / width))
    else:
        new_size = (int(size * width / height), size)
    image = image.resize(new_size, Image.BICUBIC)
    top = int(round((new_size[1] - size) / 2.0))
    left = int(round((new_size[0] - size) / 2.0))
    pixels = np.asarray(image.crop((left, top, left + size, top + size)), np.float32)
    return (pixels / 255.0 - image_ops.CLIP_MEAN) / image_ops.CLIP_STD


@pytest.mark.parametrize("size", [224, 64])
def test_eval_preprocessing_matches_pil(size):
    # Decoding is bit-identical (accurate DCT, as PIL) and the resize uses
    # PIL's taps with 8-bit rounding between passes; what remains is PIL's
    # fixed-point weights, at most one grey level (0.015 in normalised units)
    # on a few pixels: measured mean ~2e-6. The bound 0.001 fails for TF's
    # default fast DCT (~0.017) or for tf.image.resize's filter (~0.002).
    for image_bytes in real_photos():
        ours = image_ops.preprocess_for_eval(image_bytes, size).numpy()
        reference = reference_eval(image_bytes, size)
        assert ours.shape == reference.shape == (size, size, 3)
        assert np.abs(ours - reference).mean() <= 0.001
        assert np.abs(ours - reference).max() <= 0.016  # one grey level


def test_squash_preprocessing_matches_pil():
    # SigLIP's: the whole image resized to the square, then normalised.
    for image_bytes in real_photos():
        ours = image_ops.preprocess_for_eval(image_bytes, 64, mean=(0.5,) * 3, std=(0.5,) * 3,
                                             resize="squash").numpy()
        image = Image.open(io.BytesIO(image_bytes)).convert("RGB")
        reference = np.asarray(image.resize((64, 64), Image.BICUBIC), np.float32) / 127.5 - 1
        assert np.abs(ours - reference).max() <= 0.008  # one grey level


def test_resize_to_any_shape_takes_pils_pass_order():
    # Pillow runs the vertical pass first where the height loses more than
    # twice the width's pixels; the other order rounds differently between
    # the passes (up to 18 grey levels apart on noise, which this is).
    rng = np.random.default_rng(7)
    worst = 0.0
    for _ in range(60):
        width, height = (int(v) for v in rng.integers(8, 240, 2))
        new_width, new_height = (int(v) for v in rng.integers(8, 160, 2))
        pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        theirs = np.asarray(Image.fromarray(pixels).resize((new_width, new_height),
                                                           Image.BICUBIC), np.float32)
        ours = image_ops.resize_bicubic(pixels, new_height, new_width).numpy()
        worst = max(worst, np.abs(ours - theirs).max())
    assert worst <= 2.0  # PIL's fixed-point weights, as above


def test_eager_and_tf_data_agree():
    photos = real_photos()[:3]
    eager = np.stack([image_ops.preprocess_for_eval(p, 64).numpy() for p in photos])
    dataset = tf.data.Dataset.from_tensor_slices(photos).map(
        lambda b: image_ops.preprocess_for_eval(b, 64)
    )
    np.testing.assert_allclose(np.stack(list(dataset.as_numpy_iterator())), eager, atol=1e-6)


def test_resize_matches_pil_with_a_box_and_for_huge_images():
    image = Image.open(sklearn.datasets.load_sample_images().filenames[1]).convert("RGB")
    pixels = np.asarray(image)
    box = (30, 50, 300, 410)  # top, left, height, width
    ours = image_ops.resize_bicubic(pixels, 224, 224, box=box).numpy()
    theirs = np.asarray(image.resize((224, 224), Image.BICUBIC,
                                     box=(50, 30, 50 + 410, 30 + 300)), np.float32)
    assert np.abs(ours - theirs).max() <= 1.0
    # Past MAX_GATHER_PIXELS the library resize takes over, still close.
    big = np.asarray(image.resize((2600, 1735), Image.BICUBIC))
    ours = image_ops.resize_bicubic(big, 224, 336).numpy()
    theirs = np.asarray(Image.fromarray(big).resize((336, 224), Image.BICUBIC), np.float32)
    assert np.abs(ours - theirs).mean() <= 1.0


def test_resize_keeps_aspect_like_torchvision():
    image = tf.zeros([427, 640, 3], tf.uint8)
    assert image_ops.resize_shorter_side(image, 224).shape == (224, 335, 3)
    portrait = tf.zeros([640, 427, 3], tf.uint8)
    assert image_ops.resize_shorter_side(portrait, 224).shape == (335, 224, 3)


RNG = np.random.default_rng(1)
REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RGB = Image.fromarray(RNG.integers(0, 255, (40, 60, 3), dtype=np.uint8))


@pytest.mark.parametrize(
    "image_bytes",
    [
        encode(RGB.convert("CMYK"), "JPEG", quality=95),
        encode(RGB.convert("P"), "GIF"),
        encode(RGB, "BMP"),
        encode(RGB.convert("RGBA"), "PNG"),
        encode(RGB.convert("L"), "PNG"),
    ],
    ids=["cmyk-jpeg", "gif", "bmp", "rgba-png", "grey-png"],
)
def test_decodes_formats_to_rgb_like_pil(image_bytes):
    ours = image_ops.decode_rgb(image_bytes).numpy().astype(np.float32)
    theirs = np.asarray(Image.open(io.BytesIO(image_bytes)).convert("RGB"), np.float32)
    assert ours.shape == theirs.shape == (40, 60, 3)
    assert np.abs(ours - theirs).mean() < 1.0


def test_sixteen_bit_png_scales_to_eight_bits():
    values = np.array([[0, 257 * 128, 65535]], np.uint16)
    image = image_ops.decode_rgb(encode(Image.fromarray(values), "PNG")).numpy()
    assert image[0, :, 0].tolist() == [0, 128, 255]


def test_one_pixel_image_upscales():
    image_bytes = encode(Image.new("RGB", (1, 1), (10, 200, 30)), "PNG")
    out = image_ops.preprocess_for_eval(image_bytes, 32).numpy()
    assert out.shape == (32, 32, 3) and np.isfinite(out).all()
    np.testing.assert_allclose(out[5, 5] * image_ops.CLIP_STD + image_ops.CLIP_MEAN,
                               np.array([10, 200, 30]) / 255, atol=1e-2)


def test_bad_bytes_raise():
    with pytest.raises(tf.errors.InvalidArgumentError):
        image_ops.decode_rgb(b"definitely not an image")


def test_random_resized_crop_box_stays_in_bounds():
    for i in range(100):
        seed = tf.constant([7, i])
        top, left, h, w = [int(v) for v in image_ops.random_resized_crop_box(300, 200, seed)]
        assert 0 <= top and top + h <= 300 and 0 <= left and left + w <= 200
        assert 0.89 <= h * w / (300 * 200) <= 1.0  # 0.9–1.0, up to rounding


def test_train_preprocessing_is_random_per_seed_and_repeatable():
    image_bytes = real_photos()[0]
    a = image_ops.preprocess_for_train(image_bytes, 64, tf.constant([0, 1])).numpy()
    b = image_ops.preprocess_for_train(image_bytes, 64, tf.constant([0, 2])).numpy()
    again = image_ops.preprocess_for_train(image_bytes, 64, tf.constant([0, 1])).numpy()
    assert a.shape == (64, 64, 3) and np.isfinite(a).all()
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(a, again)
    in_graph = next(iter(tf.data.Dataset.from_tensors(image_bytes).map(
        lambda x: image_ops.preprocess_for_train(x, 64, tf.constant([0, 1])))))
    np.testing.assert_array_equal(in_graph, a)
    assert in_graph.shape == (64, 64, 3)


def test_fused_resize_and_crop_equals_resize_then_crop():
    # Each output pixel's taps depend on its position alone, so computing
    # only the crop gives exactly the crop of the whole resize.
    rng = np.random.default_rng(2)
    for height, width in [(427, 640), (640, 427), (5, 7), (1, 300), (300, 1), (33, 33)]:
        image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        fused = image_ops.resize_and_center_crop(image, 32).numpy()
        whole = image_ops.center_crop(image_ops.resize_shorter_side(image, 32), 32).numpy()
        np.testing.assert_array_equal(fused, whole)


@pytest.mark.parametrize("width, height", [(1000, 1), (1, 1000), (3000, 2)])
def test_thin_images_match_pil_resize_then_crop(width, height):
    # PIL resizes the whole 32,000-pixel-long image, then crops; the fused
    # path computes the crop alone. Bounds of test_eval_preprocessing_matches_pil.
    rng = np.random.default_rng(3)
    image = Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))
    image_bytes = encode(image, "PNG")
    ours = image_ops.preprocess_for_eval(image_bytes, 32).numpy()
    reference = reference_eval(image_bytes, 32)
    assert np.abs(ours - reference).mean() <= 0.001
    assert np.abs(ours - reference).max() <= 0.016  # one grey level


@pytest.mark.parametrize("height, width", [(1, 1000), (1000, 1), (2, 30000), (1, 1)])
def test_random_resized_crop_of_degenerate_shapes(height, width):
    # The ratio is clamped to what fits: a 1000×1 image gets a ~950×1 box.
    for i in range(20):
        top, left, h, w = [int(v) for v in image_ops.random_resized_crop_box(
            height, width, tf.constant([3, i]))]
        assert h >= 1 and w >= 1 and top + h <= height and left + w <= width
        assert 0.89 <= h * w / (height * width) <= 1.0
    image_bytes = encode(Image.new("RGB", (width, height), (9, 99, 199)), "PNG")
    out = image_ops.preprocess_for_train(image_bytes, 32, tf.constant([0, 1])).numpy()
    assert out.shape == (32, 32, 3) and np.isfinite(out).all()


@pytest.mark.slow
@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="its subprocess measures TensorFlow preprocessing, the same on "
                           "every backend")
def test_thin_images_and_bombs_cost_little_memory_and_time():
    # Before the fused resize, a 1000×1 PNG at 224 px took +5.2 GB and 11 s,
    # a 20000×1 at 32 px +2.3 GB. tests/data/preprocessing_cost.py says how
    # it measures (one process: ru_maxrss only grows).
    done = subprocess.run(
        [sys.executable, "-m", "tests.data.preprocessing_cost"], capture_output=True,
        text=True, timeout=600, cwd=REPOSITORY,
        env={**os.environ, "KERAS_BACKEND": "tensorflow"})
    assert done.returncode == 0, done.stderr[-3000:]
    cost = json.loads(done.stdout)
    peaks = cost["peak_mib"]
    # Thin images, then a real 120-megapixel bomb (refused unread): next to
    # nothing each; all of them together under 64 MiB.
    assert peaks["12000x10000"] < 64, peaks
    # A 4000×3000 image: its decoded copy, a cut of it and small buffers.
    assert peaks["4000x3000"] < 3 * cost["large_decoded_mib"] + 32, peaks
    slow = {case: seconds for case, seconds in cost["seconds"].items() if seconds > 2.0}
    assert not slow, slow
    refused = cost["refused"]
    assert refused and all(refused.values()), refused
    assert all("12000x10000" in case for case in refused), refused
