"""Hostile image files through `make-tfrecords`, then through `make_dataset`.

Each case is one image file beside a good one. It is written (possibly
re-encoded or downscaled) and then decodes in training and evaluation, or it
is a counted skip with a reason; the good pair is always written.
"""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_clip.data import image_ops, tfrecord_schema
from tests.hostile.corpus import (
    encode,
    jpeg_declaring,
    noise,
    png_declaring,
    run_cli,
    summary_of,
    write_table,
)

pytestmark = pytest.mark.backend_independent


def gif_animated():
    frames = [noise(20, 20, seed=s).convert("P") for s in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=50)
    return buffer.getvalue()


def bmp_top_down():
    data = bytearray(encode(noise(10, 6), "BMP"))
    height = int.from_bytes(data[22:26], "little", signed=True)
    data[22:26] = (-height).to_bytes(4, "little", signed=True)
    return bytes(data)


def progressive_jpeg():
    return encode(noise(64, 48, seed=3), progressive=True, quality=80)


def deep_png():
    pixels = np.random.default_rng(4).integers(0, 65535, (30, 20)).astype(np.uint16)
    return encode(Image.fromarray(pixels), "PNG")


WRITTEN = [  # (id, bytes maker, extension, what the summary says changed)
    ("jpeg", lambda: encode(noise()), "jpg", {}),
    ("progressive-jpeg", progressive_jpeg, "jpg", {}),
    ("cmyk-jpeg", lambda: encode(noise().convert("CMYK")), "jpg", {}),
    ("grey-jpeg", lambda: encode(noise(mode="L")), "jpg", {}),
    ("png", lambda: encode(noise(), "PNG"), "png", {}),
    ("png-16-bit", deep_png, "png", {}),
    ("png-palette-transparent", lambda: encode(noise().convert("P"), "PNG",
                                               transparency=0), "png", {}),
    ("png-grey-alpha", lambda: encode(noise(mode="LA"), "PNG"), "png", {}),
    ("png-rgba", lambda: encode(noise(mode="RGBA"), "PNG"), "png", {}),
    ("gif-animated", gif_animated, "gif", {}),
    ("bmp", lambda: encode(noise(), "BMP"), "bmp", {}),
    ("bmp-top-down", bmp_top_down, "bmp", {}),
    ("webp", lambda: encode(noise(), "WEBP"), "webp", {}),
    ("tiff", lambda: encode(noise(), "TIFF"), "tif", {"re-encoded from TIFF": 1}),
    ("one-pixel", lambda: encode(Image.new("RGB", (1, 1), (9, 9, 9)), "PNG"), "png", {}),
    ("one-row-20000", lambda: encode(Image.new("RGB", (20000, 1)), "PNG"), "png", {}),
    ("one-column-20000", lambda: encode(Image.new("RGB", (1, 20000)), "PNG"), "png", {}),
    ("large-downscaled", lambda: encode(Image.new("RGB", (3000, 2000)), quality=30), "jpg",
     {"downscaled": 1}),
    ("wrong-extension", lambda: encode(noise(), "PNG"), "jpg", {}),
    ("trailing-garbage", lambda: encode(noise()) + b"\x00garbage" * 10, "jpg", {}),
]

SKIPPED = [  # (id, bytes maker, extension, skip reason)
    ("empty", lambda: b"", "jpg", "empty image file"),
    ("random-bytes", lambda: np.random.default_rng(0).bytes(2000), "jpg", "unreadable image"),
    ("truncated-jpeg", lambda: encode(noise(200, 150))[:400], "jpg", "unreadable image"),
    ("truncated-png", lambda: encode(noise(200, 150), "PNG")[:400], "png", "unreadable image"),
    ("jpeg-header-only", lambda: b"\xff\xd8\xff\xe0" + b"\x00" * 20, "jpg", "unreadable image"),
    ("png-signature-only", lambda: b"\x89PNG\r\n\x1a\n", "png", "unreadable image"),
    ("text-file", lambda: b"just some words, no picture", "jpg", "unreadable image"),
    ("html-page", lambda: b"<html><body>404 not found</body></html>", "jpg",
     "unreadable image"),
    ("svg", lambda: b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>',
     "png", "unreadable image"),
    ("png-bomb-header", lambda: png_declaring(60_000, 60_000), "png",
     "image over 100,000,000 pixels"),
    ("jpeg-bomb-header", lambda: jpeg_declaring(65_000, 65_000), "jpg",
     "image over 100,000,000 pixels"),
    ("png-zero-size", lambda: png_declaring(0, 0), "png", "unreadable image"),
]


def convert_one(tmp_path, capsys, data, extension):
    (tmp_path / "good.jpg").write_bytes(encode(noise(seed=9)))
    (tmp_path / f"case.{extension}").write_bytes(data)
    table = write_table(tmp_path, [("good.jpg", "a good one"),
                                   (f"case.{extension}", "the case")])
    prefix = tmp_path / "out" / "p"
    code, _, _ = run_cli(capsys, ["make-tfrecords", "--table", table, "--output", prefix,
                                  "--workers", 1])
    return code, summary_of(prefix), f"{prefix}-*.tfrecord"


@pytest.mark.parametrize("name,make,extension,changed", WRITTEN, ids=[c[0] for c in WRITTEN])
def test_an_odd_but_real_image_is_written_and_decodes(name, make, extension, changed,
                                                      tmp_path, capsys):
    code, summary, pattern = convert_one(tmp_path, capsys, make(), extension)
    assert code == 0 and summary["written"] == 2 and summary["skipped"] == {}
    assert summary["changed"] == changed
    # Both stored images decode in the training and the evaluation preprocessing.
    for record in tf.data.TFRecordDataset(tf.io.gfile.glob(pattern)):
        image = tfrecord_schema.parse_example(record)["image"]
        for pixels in (image_ops.preprocess_for_eval(image, 16),
                       image_ops.preprocess_for_train(image, 16, tf.constant([1, 2]))):
            assert pixels.shape == (16, 16, 3) and np.isfinite(pixels.numpy()).all()


@pytest.mark.parametrize("name,make,extension,reason", SKIPPED, ids=[c[0] for c in SKIPPED])
def test_a_broken_image_is_a_counted_skip(name, make, extension, reason, tmp_path, capsys):
    code, summary, _ = convert_one(tmp_path, capsys, make(), extension)
    assert code == 0 and summary["written"] == 1
    assert summary["skipped"] == {reason: 1}
