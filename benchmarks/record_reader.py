"""What reading around damage costs: `record_reader.read_shard` vs TFRecordDataset.

`make_dataset` reads each shard with `read_shard`, which is TensorFlow's
sequential reader plus per-block offset tracking (so that a damaged record
loses only itself). This measures the cost of that tracking on intact
shards, alone (records/s of raw reads, the worst case: nothing else to do)
and as a share of a decoded image's cost, side by side in one run.

    python benchmarks/record_reader.py [--records 4000] [--record-kb 100] [--rounds 3]
"""

import argparse
import os
import tempfile
import time

import numpy as np
import tensorflow as tf

from keras_clip.data import record_reader


def write_shards(folder, count, size, shards=4):
    paths = [os.path.join(folder, f"s{i}.tfrecord") for i in range(shards)]
    rng = np.random.default_rng(0)
    for path in paths:
        with tf.io.TFRecordWriter(path) as writer:
            for _ in range(count // shards):
                writer.write(rng.bytes(size))
    return paths


def records_per_second(paths, read):
    dataset = tf.data.Dataset.from_tensor_slices(paths).interleave(
        read, cycle_length=len(paths), num_parallel_calls=len(paths))
    start = time.perf_counter()
    count = sum(int(batch.shape[0]) for batch in dataset.batch(256))
    return count / (time.perf_counter() - start)


def decode_seconds_per_image():
    """A 500×375 JPEG decoded and cropped to 224 (training augmentation's work)."""
    from keras_clip.data import image_ops

    image = tf.io.encode_jpeg(tf.cast(tf.random.uniform([375, 500, 3], 0, 255), tf.uint8))
    image_ops.preprocess_for_train(image, 224, tf.constant([0, 1]))
    start = time.perf_counter()
    for i in range(50):
        image_ops.preprocess_for_train(image, 224, tf.constant([0, i]))
    return (time.perf_counter() - start) / 50


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=4000)
    parser.add_argument("--record-kb", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        paths = write_shards(folder, args.records, args.record_kb * 1024)
        offsets, damage = record_reader.offsets_table(), record_reader.DamageCounter()
        plain = lambda path: tf.data.TFRecordDataset(path).ignore_errors()  # noqa: E731
        tracked = lambda path: record_reader.read_shard(path, offsets, damage)  # noqa: E731
        rows = []
        for _ in range(args.rounds):  # alternating, so drift hits both alike
            rows.append((records_per_second(paths, plain), records_per_second(paths, tracked)))
    plain_rate = np.median([r[0] for r in rows])
    tracked_rate = np.median([r[1] for r in rows])
    extra = 1 / tracked_rate - 1 / plain_rate
    image = decode_seconds_per_image()
    print(f"{args.records} records of {args.record_kb} KiB, median of {args.rounds} rounds:")
    print(f"  TFRecordDataset         {plain_rate:10.0f} records/s")
    print(f"  read_shard (tracked)    {tracked_rate:10.0f} records/s  "
          f"({tracked_rate / plain_rate:.2f}x)")
    print(f"  extra per record        {extra * 1e6:10.1f} us; one training image's "
          f"decode + crop: {image * 1e6:.0f} us ({extra / image:.1%} of it)")


if __name__ == "__main__":
    main()
