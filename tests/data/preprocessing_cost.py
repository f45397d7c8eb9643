"""Peak memory and seconds of preprocessing thin and large images, one process.

`image_ops_test.py` runs this in a subprocess: `ru_maxrss` is per process
and only grows, and TensorFlow's import costs ~5 s, so all cases share one
run. Every path is first warmed up on a small image (tracing, thread pools),
then the thin images go through evaluation (224 and 32 px), training and
serving preprocessing, eagerly and inside `tf.data.Dataset.map`; the large
then a decompression bomb (which must be refused before decoding, so
costs nothing); the large normal image comes last, as it raises the
high-water mark by more. Prints one JSON object: the peak increase in MiB
over the warmed-up baseline after each case (cumulative: a peak only
grows), each case's seconds, and whether each refusal was the bomb check.

    KERAS_BACKEND=tensorflow python -m tests.data.preprocessing_cost
"""

import json
import resource
import struct
import sys
import time
import types
import zlib

import numpy as np
import tensorflow as tf

from keras_clip.data import image_ops
from keras_clip.export.serving_module import ServingModule
from keras_clip.preprocessing import Preprocessing

THIN = [(1000, 1), (1, 1000), (20000, 1), (1, 20000), (30000, 2), (2, 30000)]
LARGE = (4000, 3000)
# A real decompression bomb: 120 megapixels of zeros deflate to ~120 kB.
BOMB = (12000, 10000)


def png(width, height, gradient=True):
    """A PNG of a grey gradient (or of zeros), written a row at a time.

    PIL would hold the decoded image, which would raise the high-water mark
    above what the large case is there to measure.
    """
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))

    ramp = np.arange(width, dtype=np.int64) * 127 // max(width - 1, 1) * gradient
    compressor, rows = zlib.compressobj(1), []
    for y in range(height):
        row = (ramp + y * 127 // max(height - 1, 1) * gradient).astype(np.uint8)
        rows.append(compressor.compress(b"\0" + row.tobytes()))  # filter: none
    data = b"".join(rows) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data)
            + chunk(b"IEND", b""))


def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def paths():
    """`name → fn(bytes tensor) → pixels` for every preprocessing path."""
    seed = tf.constant([0, 1])
    # ServingModule._pixels reads only `image_size` and `preprocessing` from
    # its module: call it on a stand-in rather than build a model. A
    # tf.function, as served.
    stand_in = types.SimpleNamespace(image_size=32, preprocessing=Preprocessing(32, 16))
    serving = tf.function(lambda batch: ServingModule._pixels(stand_in, batch))
    return {
        "eval224": lambda b: image_ops.preprocess_for_eval(b, 224),
        "eval32": lambda b: image_ops.preprocess_for_eval(b, 32),
        "train224": lambda b: image_ops.preprocess_for_train(b, 224, seed),
        "serving32": lambda b: serving(tf.reshape(b, [1]))[0],
    }


def runners(images):
    """`(name, run)` pairs: each path eagerly and, but serving, in tf.data.

    The datasets are built (and their functions traced) here, before any
    measurement; `run(i)` preprocesses `images[i]`, in order.
    """
    options = tf.data.Options()
    # One element at a time: a prefetch would work on the next image while
    # this one is measured.
    options.autotune.enabled = False
    options.experimental_optimization.inject_prefetch = False
    pairs = []
    for name, fn in paths().items():
        pairs.append((f"{name} eager", lambda i, fn=fn: fn(tf.constant(images[i]))))
        if name.startswith("serving"):
            continue  # already a graph
        dataset = tf.data.Dataset.from_tensor_slices(images).map(fn).with_options(options)
        iterator = iter(dataset)
        pairs.append((f"{name} tf.data", lambda i, iterator=iterator: next(iterator)))
    return pairs


def main():
    sizes = [(40, 30)] + THIN + [BOMB, LARGE]
    labels = ["warm-up"] + [f"{w}x{h}" for w, h in sizes[1:]]
    images = [png(*size, gradient=size != BOMB) for size in sizes]
    pairs = runners(images)
    seconds, refused, peaks = {}, {}, {}
    for i, label in enumerate(labels):
        for name, run in pairs:
            start = time.perf_counter()
            try:
                run(i).numpy()
            except tf.errors.InvalidArgumentError as error:
                refused[f"{name} {label}"] = "refused before decoding" in error.message
            seconds[f"{name} {label}"] = round(time.perf_counter() - start, 3)
        peaks[label] = peak_mib()
    baseline = peaks.pop("warm-up")
    json.dump({"peak_mib": {label: round(peak - baseline, 1) for label, peak in peaks.items()},
               "large_decoded_mib": round(LARGE[0] * LARGE[1] * 3 / 2**20, 1),
               "refused": refused,
               "seconds": {k: v for k, v in seconds.items() if "warm-up" not in k}},
              sys.stdout, indent=1)


if __name__ == "__main__":
    main()
