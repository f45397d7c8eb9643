"""Per-image cost of the training pipeline's image kernels: TensorFlow vs PIL.

One thread each, on one 500×375 JPEG (a crop of a scikit-learn sample
photo): JPEG decode, then a 460×350 crop resized to 224×224 with each of
TensorFlow's resize kernels and with PIL's antialiased bicubic (what a
torchvision `RandomResizedCrop` does). `data_pipeline.py` compares whole
pipelines; this says which kernel bounds them.

    python benchmarks/image_kernels.py [--repeats 100] [--json out.json]
"""

import argparse
import io
import json
import os
import sys
import time

import sklearn.datasets
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.throughput_workers import timed

CROP = (20, 10, 480, 360)  # left, top, right, bottom: 460×350
SIZE = 224


def milliseconds(function, repeats):
    """Median of `repeats` timed calls after one warm-up, in ms."""
    return 1e3 * timed(function, repeats, warmup=1)


def sample_jpeg():
    photo = Image.open(sklearn.datasets.load_sample_images().filenames[0]).convert("RGB")
    buffer = io.BytesIO()
    photo.crop((0, 0, 500, 375)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def tensorflow_kernels(jpeg, repeats):
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    # Variables, not constants: grappler would fold a constant's decode away.
    data = tf.Variable(jpeg)
    image = tf.Variable(tf.io.decode_jpeg(jpeg, channels=3))
    left, top, right, bottom = CROP
    results = {}
    for dct in ("INTEGER_ACCURATE", "INTEGER_FAST"):
        decode = tf.function(lambda dct=dct: tf.io.decode_jpeg(data, channels=3, dct_method=dct))
        results[f"TensorFlow decode_jpeg {dct}"] = milliseconds(decode, repeats)
    for method, antialias in [("bicubic", True), ("bilinear", True), ("area", False),
                              ("bicubic", False), ("bilinear", False)]:
        resize = tf.function(lambda method=method, antialias=antialias: tf.image.resize(
            image[top:bottom, left:right], [SIZE, SIZE], method, antialias=antialias))
        name = f"TensorFlow resize {method}{', antialiased' if antialias else ''}"
        results[name] = milliseconds(resize, repeats)
    return results


def pil_kernels(jpeg, repeats):
    image = Image.open(io.BytesIO(jpeg)).convert("RGB")

    def decode():
        Image.open(io.BytesIO(jpeg)).convert("RGB").load()

    return {
        "PIL decode": milliseconds(decode, repeats),
        "PIL resize bicubic, antialiased": milliseconds(
            lambda: image.resize((SIZE, SIZE), Image.BICUBIC, box=CROP), repeats),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--json")
    args = parser.parse_args()
    jpeg = sample_jpeg()
    results = {**pil_kernels(jpeg, args.repeats), **tensorflow_kernels(jpeg, args.repeats)}
    reference = results["PIL resize bicubic, antialiased"]
    for name, ms in results.items():
        relative = f"  ({ms / reference:.2f}× PIL's resize)" if "resize" in name else ""
        print(f"{name:45s} {ms:6.2f} ms{relative}")
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"date": time.strftime("%Y-%m-%d"), "ms": results}, file, indent=2)


if __name__ == "__main__":
    main()
