"""The one place that defines keras_clip's TFRecord format.

Each record is a `tf.train.Example` with these features:

| feature     | type         | meaning                                             |
|-------------|--------------|-----------------------------------------------------|
| `image`     | bytes        | encoded JPEG, PNG, GIF, BMP or WebP, as TF decodes it |
| `captions`  | bytes list   | one or more UTF-8 captions, cleaned (ftfy, HTML)     |
| `token_ids` | int64 list   | optional: captions pre-tokenized, row after row,     |
|             |              | `len(captions) × context_length` ids                 |
| `key`       | bytes        | the pair's id in its source (file path or tar key)   |
| `source`    | bytes        | where it came from (table, folder or tar shard)      |
| `width`, `height` | int64  | size of the image as stored                          |

Every shard `NAME.tfrecord` has a sidecar `NAME.tfrecord.json` holding
`{"records": N}`, so readers can tell records lost to a damaged file.
"""

import tensorflow as tf

FEATURES = {
    "image": tf.io.FixedLenFeature([], tf.string),
    "captions": tf.io.VarLenFeature(tf.string),
    "token_ids": tf.io.VarLenFeature(tf.int64),
    "key": tf.io.FixedLenFeature([], tf.string, default_value=""),
    "source": tf.io.FixedLenFeature([], tf.string, default_value=""),
    "width": tf.io.FixedLenFeature([], tf.int64, default_value=0),
    "height": tf.io.FixedLenFeature([], tf.int64, default_value=0),
}
SIDECAR_SUFFIX = ".json"


def serialize_example(image, captions, key="", source="", width=0, height=0,
                      token_ids=None):
    """One record's serialized `tf.train.Example` (see the module docstring)."""

    def bytes_feature(values):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))

    def int_feature(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))

    features = {
        "image": bytes_feature([image]),
        "captions": bytes_feature([c.encode("utf-8") for c in captions]),
        "key": bytes_feature([key.encode("utf-8")]),
        "source": bytes_feature([source.encode("utf-8")]),
        "width": int_feature([width]),
        "height": int_feature([height]),
    }
    if token_ids is not None:
        features["token_ids"] = int_feature([int(i) for i in token_ids.ravel()])
    example = tf.train.Example(features=tf.train.Features(feature=features))
    # Deterministic: map fields in key order, so the same pair gives the same
    # bytes in every process (the default order follows string hashing).
    return example.SerializeToString(deterministic=True)


def parse_example(serialized):
    """A serialized record → dict of dense tensors (`captions`: `(C,)` strings)."""
    parsed = tf.io.parse_single_example(serialized, FEATURES)
    parsed["captions"] = tf.sparse.to_dense(parsed["captions"])
    parsed["token_ids"] = tf.sparse.to_dense(parsed["token_ids"])
    return parsed
