"""Checks `make_dataset` runs before building a pipeline: the schema, at once."""

import re

import tensorflow as tf

from keras_clip.data import record_reader, tfrecord_schema
from keras_clip.data.dataset_stats import name_files


def check_first_records(files, tokenizer, context_length):
    """Checks the schema on the first readable record; returns the ids' width.

    Raises `ValueError` at once when no file holds a readable record (e.g.
    GZIP-compressed shards, or files that are not TFRecords), when the
    first record is no keras_clip example, or when it holds no `token_ids`
    and no `tokenizer` is given. Returns `context_length`, or when that is
    None and ids are stored, the first record's id width.
    """
    damage = record_reader.DamageCounter()
    first = None
    for path in files:
        for record in record_reader.read_shard(tf.constant(path), record_reader
                                               .offsets_table(), damage).take(1):
            first = record
        if first is not None:
            break
    if first is None:
        raise ValueError(
            f"No readable TFRecord in {name_files(files)}{compression_hint(files)}. "
            "keras_clip reads uncompressed TFRecords written by `keras-clip "
            "make-tfrecords`.")
    try:
        example = tfrecord_schema.parse_example(first)
    # UnicodeDecodeError: TensorFlow's message quotes the record's raw bytes.
    except (tf.errors.InvalidArgumentError, UnicodeDecodeError) as error:
        reason = ("it does not parse as a tf.train.Example"
                  if isinstance(error, UnicodeDecodeError) else first_line(error))
        raise ValueError(
            f"{path}: its first record is not a keras_clip example ({reason}); write "
            "shards with `keras-clip make-tfrecords`."
        ) from None
    captions = int(tf.size(example["captions"]))
    if not captions:
        raise ValueError(f"{path}: its first record has no caption; write shards with "
                         "`keras-clip make-tfrecords`.")
    if tokenizer is None:
        ids = int(tf.size(example["token_ids"]))
        if not ids:
            raise ValueError(
                f"{path}: records hold no token_ids: pass a tokenizer (TrainConfig."
                "tokenizer, or make-tfrecords --tokenize to store ids).")
        if ids % captions:
            raise ValueError(f"{path}: its first record holds {ids} token ids for "
                             f"{captions} captions, not one row per caption.")
        context_length = context_length or ids // captions
    return context_length


def compression_hint(files):
    with tf.io.gfile.GFile(files[0], "rb") as file:
        magic = file.read(2)
    if magic == b"\x1f\x8b":
        return f" ({'it looks' if len(files) == 1 else 'they look'} GZIP-compressed)"
    return ""


def first_line(error):
    """An error's first line, without TensorFlow's op and device decorations."""
    message = getattr(error, "message", None) or str(error)
    message = re.sub(r"\{\{[^}]*\}\}|\[Op:[^\]]*\]( name:.*)?", "", message).strip()
    return message.splitlines()[0].strip() if message else type(error).__name__
