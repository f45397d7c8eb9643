"""ShardWriter: serialized records into numbered TFRecord shards with sidecars."""

import json
import re

import tensorflow as tf

from keras_clip.data import tfrecord_schema

# Files being written end with this until they are whole.
PARTIAL_SUFFIX = ".partial"


def write_atomically(path, text):
    """Writes `text` to `path` through a temporary name: never half a file."""
    partial = path + PARTIAL_SUFFIX
    with tf.io.gfile.GFile(partial, "w") as file:
        file.write(text)
    tf.io.gfile.rename(partial, path, overwrite=True)


class ShardWriter:
    """Writes records to `{prefix}-00000.tfrecord`, `-00001`, … and their sidecars.

    A shard is closed once it holds `max_bytes` bytes or `max_records`
    records (whichever comes first; None: no limit). Each is written as
    `NAME.partial` and renamed to `NAME` when closed, after its `.json`
    sidecar with its record count: readers never see a half-written shard,
    and `make_dataset`'s epochs can count records without reading them.
    Use as a context manager (an error inside drops the shard being
    written), or call `close()`; `shards` lists what was written and
    `records` how many records in all.

    Example:
    >>> with ShardWriter("data/example", max_records=2) as writer:
    ...     for key in "abc":
    ...         writer.write(tfrecord_schema.serialize_example(b"", ["x"], key=key))
    >>> writer.shards, writer.records
    (['data/example-00000.tfrecord', 'data/example-00001.tfrecord'], 3)
    """

    def __init__(self, prefix, max_bytes=None, max_records=None):
        self.prefix, self.max_bytes, self.max_records = prefix, max_bytes, max_records
        self.shards, self.records = [], 0
        self._writer, self._path, self._size, self._count = None, None, 0, 0

    def write(self, record):
        if self._writer is None:
            self._path = f"{self.prefix}-{len(self.shards):05d}.tfrecord"
            self._writer = tf.io.TFRecordWriter(self._path + PARTIAL_SUFFIX)
            self._size = self._count = 0
        self._writer.write(record)
        self._size += len(record)
        self._count += 1
        self.records += 1
        if (self.max_bytes is not None and self._size >= self.max_bytes) or (
                self.max_records is not None and self._count >= self.max_records):
            self._close_shard()

    def _close_shard(self):
        if self._writer is None:
            return
        self._writer.close()
        write_atomically(self._path + tfrecord_schema.SIDECAR_SUFFIX,
                         json.dumps({"records": self._count}))
        tf.io.gfile.rename(self._path + PARTIAL_SUFFIX, self._path, overwrite=True)
        self.shards.append(self._path)
        self._writer = None

    def close(self):
        """Closes the last shard; returns the paths of all shards written."""
        self._close_shard()
        return self.shards

    def __enter__(self):
        return self

    def __exit__(self, error_type, error, traceback):
        if error_type is None:
            self.close()
        elif self._writer is not None:  # never publish a shard cut short
            self._writer.close()
            tf.io.gfile.remove(self._path + PARTIAL_SUFFIX)
            self._writer = None


def remove_stale_shards(prefix, written):
    """Removes numbered shards at `prefix` (and sidecars) that are not in `written`.

    They are an earlier run's (`{prefix}-00003.tfrecord`, or keras_clip
    0.1's `{prefix}-00000-of-00002.tfrecord`), which `{prefix}-*.tfrecord`
    would otherwise mix into this run's data; other files are left alone.
    Returns how many were removed.
    """
    keep = set(written)
    stale = [path for path in tf.io.gfile.glob(f"{prefix}-*.tfrecord")
             if re.fullmatch(r"-\d{5}(-of-\d{5})?\.tfrecord", path[len(prefix):])
             and path not in keep]
    for path in stale:
        tf.io.gfile.remove(path)
        sidecar = path + tfrecord_schema.SIDECAR_SUFFIX
        if tf.io.gfile.exists(sidecar):
            tf.io.gfile.remove(sidecar)
    return len(stale)


def write_shards(records, prefix, count, num_shards):
    """`count` records split evenly into `num_shards` shards; returns their glob.

    Shards an earlier run left at `prefix` are removed, so the glob names
    this run's records only.
    """
    tf.io.gfile.makedirs(prefix.rpartition("/")[0] or ".")
    with ShardWriter(prefix, max_records=-(-count // max(num_shards, 1))) as writer:
        for record in records:
            writer.write(record)
    remove_stale_shards(prefix, writer.shards)
    return f"{prefix}-*.tfrecord"
