"""`image_headers`: declared sizes as TensorFlow decodes them, bombs refused unread."""

import io
import struct
import time

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_clip.data import image_ops
from tests.data.fixtures import bmp_declaring, jpeg_declaring, png_declaring

pytestmark = pytest.mark.backend_independent

RNG = np.random.default_rng(1)
RGB = Image.fromarray(RNG.integers(0, 255, (40, 60, 3), dtype=np.uint8))


def encode(image, format, **options):
    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()


# === Declared size and decompression bombs ===

SIZES = [(1, 1), (1, 7), (7, 1), (37, 53), (1000, 1), (1, 1000), (640, 427)]


def gif(screen, frames):
    """A GIF whose frames, `(width, height)` each, may exceed its logical screen.

    PIL never writes one. Codes are 8 bits (minimum code size 7) with a
    clear code every 120 pixels, so the LZW data is the pixels themselves;
    a frame `(width, height, False)` has a clear and an end code only (its
    data cut short, as in a header-only bomb).
    """
    def sub_blocks(data):
        chunks = [data[i : i + 255] for i in range(0, len(data), 255)]
        return b"".join(bytes([len(c)]) + c for c in chunks) + b"\0"

    palette = bytes(range(128)) * 3
    data = b"GIF89a" + struct.pack("<HHBBB", *screen, 0x80 | 6, 0, 0) + palette
    for width, height, *pixels in frames:
        count = width * height if not pixels or pixels[0] else 0
        codes = b"".join(b"\x80" + b"\x01" * min(120, count - i) for i in range(0, count, 120))
        data += b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0)
        data += b"\x07" + sub_blocks(codes + (b"\x80" if not count else b"") + b"\x81")
    return data + b"\x3b"


def jxl_codestream(width, height):
    """A JPEG XL signature and SizeHeader (explicit 30-bit sizes), then zeros."""
    bits = [0]  # not small

    def u32(value):  # selector 3: 30 bits of value - 1
        bits.extend([1, 1] + [(value - 1) >> i & 1 for i in range(30)])

    u32(height)
    bits.extend([0, 0, 0])  # ratio 0: the width follows
    u32(width)
    bits.extend([0] * (-len(bits) % 8))
    packed = bytes(sum(bit << i for i, bit in enumerate(bits[j : j + 8]))
                   for j in range(0, len(bits), 8))
    return b"\xff\x0a" + packed + bytes(16)


# Real JPEG XL files (libjxl 0.11.2, lossless, one colour; PIL writes none):
# codestreams, small (multiples of 8), with a fixed ratio (16×8: 2:1,
# 1920×1080: 16:9) or explicit sizes, and one container.
JXL_FILES = {
    "1x1": "ff0a001010090804010034004b188b15c24982e5014e2c1707",
    "8x8": "ff0a4140240804010058004b188b1500d417638cf162bc039c7c27510140c1c871",
    "16x8": "ff0ac141240804010058004b188b1500d419638c3163cc039c44514c05c056c971",
    "37x53": "ff0aa0014880480804010060004b188b1500d41b638c7163dc039cf84005003c12c8e10d72",
    "1000x1": "ff0a0080ce0788040802010050000000400224400224004b188b156c291e3a3106b74e0c3e"
             "6406006002000738a9b4782aa0e21e0738a9b4782aa0e21e0738a9b4782aa0e21e073851"
             "efe424200a1f",
    "1920x1080": "ff0aba210591080201005c000000c0000cc0000cc0000cc0000cc0000cc0000cc0000cc0"
                 "000cc0000cc0000cc0000cc0000cc0000cc0000cc0000cc0000cc0000cc0000cc0000cc0"
                 "000c004b189b6d50780ab3539090502043694b2dfea4c187f40007381907381907381907"
                 "381907381907381907381907381907381907381907381907381907381907381907381907"
                 "381907381907381907381907381907381907381907381907381907381907381907381907"
                 "381907381907381907381907381907381907381907381907381907381907381907381907"
                 "3819",
    "37x53-container": "0000000c4a584c200d0a870a00000014667479706a786c20000000006a786c20"
                       "0000002d6a786c63ff0aa0014880480804010060004b188b1500d41b638c7163"
                       "dc039cf84005003c12c8e10d72",
}


def real_images():
    """`(id, bytes, (width, height, pixels))` for each format TF decodes."""
    cases = []
    for width, height in SIZES:
        rgb = Image.fromarray(RNG.integers(0, 255, (height, width, 3), dtype=np.uint8))
        for name, image_bytes in [
            ("jpeg", encode(rgb, "JPEG")), ("png", encode(rgb, "PNG")),
            ("grey-png", encode(rgb.convert("L"), "PNG")),
            ("gif", encode(rgb.convert("P"), "GIF")), ("bmp", encode(rgb, "BMP")),
            ("webp-lossy", encode(rgb, "WEBP", quality=80)),
            ("webp-lossless", encode(rgb, "WEBP", lossless=True)),
            ("webp-extended", encode(rgb, "WEBP", lossless=True, exif=b"Exif\0\0")),
        ]:
            size = (width, height, width * height)
            cases.append((f"{name}-{width}x{height}", image_bytes, size))
    frames = [Image.fromarray(RNG.integers(0, 255, (30, 40), dtype=np.uint8), "L")
              for _ in range(3)]
    animated = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    cases.append(("gif-3-frames", animated, (40, 30, 3 * 1200)))
    # TensorFlow's canvas is the largest frame, whatever the screen says.
    cases.append(("gif-frame-over-screen", gif((10, 10), [(10, 10), (300, 200)]),
                  (300, 200, 100 + 60000)))
    cases.append(("gif-frame-under-screen", gif((300, 200), [(10, 10)]), (10, 10, 100)))
    for name, hex_bytes in JXL_FILES.items():
        width, height = map(int, name.split("-")[0].split("x"))
        cases.append((f"jxl-{name}", bytes.fromhex(hex_bytes), (width, height, width * height)))
    return cases


REAL_IMAGES = real_images()


@pytest.mark.parametrize("image_bytes, expected", [case[1:] for case in REAL_IMAGES],
                         ids=[case[0] for case in REAL_IMAGES])
def test_declared_size_is_what_tensorflow_decodes(image_bytes, expected):
    assert image_ops.declared_size(image_bytes).numpy().tolist() == list(expected)
    width, height, _ = expected
    decoded = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    assert decoded.shape == (height, width, 3)


def test_unknown_bytes_declare_nothing_and_the_decoder_refuses_them():
    for junk in [b"", b"B", b"definitely not an image", b"RIFF1234WEBP"]:
        assert image_ops.declared_size(junk).numpy().tolist() == [0, 0, 0]
        with pytest.raises(tf.errors.InvalidArgumentError, match="(?i)unknown image|empty"):
            image_ops.decode_rgb(junk)


def patched_webp(width, height):
    data = bytearray(encode(RGB, "WEBP", lossless=True))
    bits = struct.unpack("<I", data[21:25])[0] & ~((1 << 28) - 1)  # keep alpha, version
    data[21:25] = struct.pack("<I", bits | (width - 1) | (height - 1) << 14)
    return bytes(data)


BOMBS = {
    "png": (png_declaring(20000, 20000), "20000x20000"),
    "jpeg": (jpeg_declaring(60000, 60000), "60000x60000"),
    "bmp-top-down": (bmp_declaring(60000, -60000), "60000x60000"),
    "gif": (gif((10, 10), [(60000, 60000, False)]), "60000x60000"),
    # 41 kB of real frames: TensorFlow's canvas would be 20000×20000 (1.2 GB).
    "gif-canvas": (gif((10, 10), [(20000, 1), (1, 20000)]), "20000x20000"),
    # Each frame is small; TensorFlow decodes all 101 of them.
    "gif-frames": (gif((1000, 1000), [(1000, 1000, False)] * 101), "(101000000 to decode"),
    "webp": (patched_webp(16384, 16384), "16384x16384"),
    "jxl": (jxl_codestream(60000, 60000), "60000x60000"),
}


@pytest.mark.parametrize("name", list(BOMBS))
def test_bombs_are_refused_before_decoding(name):
    image_bytes, declared = BOMBS[name]
    start = time.perf_counter()
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        image_ops.decode_rgb(image_bytes)
    assert time.perf_counter() - start < 1.0
    assert declared in error.value.message
    assert "over max_pixels=100000000" in error.value.message
    assert "refused before decoding" in error.value.message


def test_gifs_too_long_to_read_are_refused():
    # 12,000 one-pixel frames: 24,000 steps of reading, over the cap that
    # keeps the walk under ~1 s (a GIF that PIL writes takes ~4 a frame).
    image_bytes = gif((1, 1), [(1, 1)] * 12000)
    assert image_ops.declared_size(image_bytes).numpy()[2] == -1
    with pytest.raises(tf.errors.InvalidArgumentError, match="past 20000 steps"):
        image_ops.decode_rgb(image_bytes)


def test_bombs_are_refused_inside_tf_data():
    # In a graph the assert op must run before the decode op; the iterator
    # goes on after each refusal, to the last, valid image.
    images = [image_bytes for image_bytes, _ in BOMBS.values()] + [encode(RGB, "PNG")]
    iterator = iter(tf.data.Dataset.from_tensor_slices(images).map(
        lambda b: image_ops.preprocess_for_eval(b, 32)))
    for _ in BOMBS:
        with pytest.raises(tf.errors.InvalidArgumentError, match="refused before decoding"):
            next(iterator)
    assert next(iterator).shape == (32, 32, 3)


def test_max_pixels_is_the_limit():
    image_bytes = encode(RGB, "PNG")  # 60×40: 2400 pixels
    assert image_ops.decode_rgb(image_bytes, max_pixels=2400).shape == (40, 60, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="60x40 .* over max_pixels=2399"):
        image_ops.decode_rgb(image_bytes, max_pixels=2399)
    with pytest.raises(tf.errors.InvalidArgumentError, match="over max_pixels=100"):
        image_ops.preprocess_for_eval(image_bytes, 32, max_pixels=100)
    with pytest.raises(tf.errors.InvalidArgumentError, match="over max_pixels=100"):
        image_ops.preprocess_for_train(image_bytes, 32, tf.constant([0, 1]), max_pixels=100)
