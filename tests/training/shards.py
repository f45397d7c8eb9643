"""Tiny TFRecord shards for training tests: JPEGs with stored token ids."""

from keras_clip.data.synthetic_pairs import write_synthetic_tfrecords


def write_training_shards(directory, count=32, num_shards=2, seed=0):
    """`count` pairs in `num_shards` shards (with sidecars); returns the glob."""
    return write_synthetic_tfrecords(str(directory), count=count, num_shards=num_shards,
                                     seed=seed)
