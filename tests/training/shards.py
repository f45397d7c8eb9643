"""Tiny TFRecord shards for training tests: JPEGs with stored token ids."""

import json

import tensorflow as tf

from keras_clip.data import tfrecord_schema
from keras_clip.data.synthetic_pairs import synthetic_pairs
from tests.data.fixtures import encode, photo


def write_training_shards(directory, count=32, num_shards=2, context_length=16, seed=0):
    """`count` pairs in `num_shards` shards (with sidecars); returns the glob."""
    token_ids = synthetic_pairs(count, image_size=4, context_length=context_length,
                                seed=seed)["token_ids"]
    directory.mkdir(parents=True, exist_ok=True)
    for shard in range(num_shards):
        path = str(directory / f"train-{shard:05d}-of-{num_shards:05d}.tfrecord")
        indices = range(shard, count, num_shards)
        with tf.io.TFRecordWriter(path) as writer:
            for i in indices:
                writer.write(tfrecord_schema.serialize_example(
                    encode(photo(seed * 1000 + i, (40, 36))), [f"caption {i}"],
                    key=str(i), token_ids=token_ids[i:i + 1]))
        with open(path + tfrecord_schema.SIDECAR_SUFFIX, "w") as file:
            json.dump({"records": len(indices)}, file)
    return str(directory / "train-*.tfrecord")
