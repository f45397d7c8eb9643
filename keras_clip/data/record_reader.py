"""Reading TFRecord shards so that one damaged record loses only itself.

`tf.data.TFRecordDataset` stops a file at its first corrupt record (a CRC
error, a cut, flipped bytes): with `ignore_errors()` every intact record after
it is silently lost. `read_shard` reads a file at full speed with
TensorFlow's reader and, where that reader stopped before the end, carries on
in `records_after`: it skips the damaged record by its length field (checked
by its own CRC) or, when the length itself is damaged, scans forward for the
next valid record header, and reads on from there. Every skipped region is
counted in `DamageCounter`.

A TFRecord is `uint64 length | uint32 masked_crc32c(length) | data |
uint32 masked_crc32c(data)`, all little-endian.
"""

import functools
import threading

import numpy as np
import tensorflow as tf

# TensorFlow's own random-access record reader (checks both CRCs); public
# `tf.io` has none. Its module is pinned with tensorflow (pyproject.toml).
from tensorflow.python.lib.io import _pywrap_record_io

HEADER_BYTES = 12  # length + its CRC
FRAMING_BYTES = 16  # header + the data's CRC
# Bytes scanned at a time when looking for the next header after damage.
SCAN_CHUNK = 8 * 2**20
# Records read between two updates of a file's offset.
TRACKED_BLOCK = 64
# Records longer than this are taken as a damaged length, not a record.
MAX_RECORD_BYTES = 2**31


def _crc32c_table():
    table = np.zeros(256, np.uint32)
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table[byte] = crc
    return table


_CRC_TABLE = _crc32c_table()


def masked_crc32c_of_lengths(data, positions):
    """TFRecord's masked CRC-32C of the 8 bytes at each of `positions`.

    Vectorised over positions (numpy), so a scan of a megabyte checks a
    million candidate headers in a few milliseconds.
    """
    crc = np.full(len(positions), 0xFFFFFFFF, np.uint32)
    for k in range(8):
        crc = _CRC_TABLE[(crc ^ data[positions + k]) & 0xFF] ^ (crc >> np.uint32(8))
    crc ^= np.uint32(0xFFFFFFFF)
    # TFRecord's mask: rotate right by 15 bits, add a constant.
    rotated = (crc >> np.uint32(15)) | (crc << np.uint32(17))
    return (rotated + np.uint32(0xA282EAD8)).astype(np.uint32)


class DamageCounter:
    """Damaged regions skipped inside shards, counted across threads."""

    def __init__(self):
        self._lock = threading.Lock()
        self.regions = 0
        self.files = set()

    def add(self, path):
        with self._lock:
            self.regions += 1
            self.files.add(path)


def _header_at(file, offset, size):
    """The record length at `offset` if its header is valid, else None."""
    if offset + HEADER_BYTES > size:
        return None
    file.seek(offset)
    header = np.frombuffer(file.read(HEADER_BYTES), np.uint8)
    if len(header) < HEADER_BYTES:
        return None
    (length,) = header[:8].view("<u8")
    (stored,) = header[8:].view("<u4")
    if masked_crc32c_of_lengths(header, np.array([0]))[0] != stored:
        return None
    return int(length)


def _next_header(file, offset, size):
    """The first offset after `offset` holding a valid header, or None."""
    start = offset + 1
    while start + HEADER_BYTES <= size:
        file.seek(start)
        chunk = np.frombuffer(file.read(SCAN_CHUNK + HEADER_BYTES), np.uint8)
        candidates = np.arange(max(len(chunk) - HEADER_BYTES + 1, 0))
        if len(candidates):
            stored = (chunk[candidates + 8].astype(np.uint32)
                      | chunk[candidates + 9].astype(np.uint32) << 8
                      | chunk[candidates + 10].astype(np.uint32) << 16
                      | chunk[candidates + 11].astype(np.uint32) << 24)
            found = np.flatnonzero(masked_crc32c_of_lengths(chunk, candidates) == stored)
            for position in found:
                length = _header_at(file, start + int(position), size)
                if length is not None and length < MAX_RECORD_BYTES:
                    return start + int(position)
        start += SCAN_CHUNK
    return None


def records_after(path, offset, damage):
    """Yields the intact records of `path` from byte `offset` on, skipping damage.

    `offset` is where TensorFlow's sequential reader stopped (the end of the
    last record it delivered). Called once per file and pass; at the end of
    an intact file it reads nothing and returns at once.
    """
    path = path.decode() if isinstance(path, bytes) else path
    size = tf.io.gfile.stat(path).length
    if offset >= size:
        return
    reader = _pywrap_record_io.RandomRecordReader(path)
    with tf.io.gfile.GFile(path, "rb") as file:
        while offset < size:
            try:
                record, offset = reader.read(offset)
                yield record
                continue
            # IndexError: the reader's "out of range" (a cut inside a header).
            except (tf.errors.OpError, OSError, IndexError):
                pass
            damage.add(path)
            length = _header_at(file, offset, size)
            end = None if length is None else offset + FRAMING_BYTES + length
            if end is not None and end < size:
                offset = end  # the data was damaged; the next record follows it
            elif end is not None:
                return  # the file ends inside this record (cut short)
            else:
                offset = _next_header(file, offset, size)
                if offset is None:
                    return


def offsets_table():
    """Where each file's sequential read has got to: `{path: next byte}`."""
    return tf.lookup.experimental.MutableHashTable(tf.string, tf.int64, 0)


def read_shard(path, offsets, damage):
    """A dataset of the intact records of one TFRecord file (see module doc).

    `offsets` is an `offsets_table()` shared by the files of one pipeline:
    each file of a pass is read once, by one reader at a time.
    """

    def track(records):
        lengths = tf.cast(tf.strings.length(records), tf.int64) + FRAMING_BYTES
        end = offsets.lookup(path) + tf.reduce_sum(lengths)
        with tf.control_dependencies([offsets.insert(path, end)]):
            return tf.identity(records)

    def rest(path):
        offset = offsets.lookup(path)
        # Forget the file's offset, so that the next pass starts from 0.
        with tf.control_dependencies([offset]):
            forget = offsets.remove(tf.reshape(path, [1]))
        with tf.control_dependencies([forget]):
            offset = tf.identity(offset)
        return tf.data.Dataset.from_generator(
            functools.partial(records_after, damage=damage), args=(path, offset),
            output_signature=tf.TensorSpec([], tf.string))

    # Offsets are tracked per block of records: per record, the table's
    # update would double the cost of reading.
    sequential = (tf.data.TFRecordDataset(path).ignore_errors()
                  .batch(TRACKED_BLOCK).map(track).unbatch())
    return sequential.concatenate(tf.data.Dataset.from_tensors(path).flat_map(rest))
