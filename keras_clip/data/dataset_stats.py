"""`DatasetStats`: what a `make_dataset` pipeline read, delivered and lost."""

import tensorflow as tf

from keras_clip.data import record_reader

# Files named in a message before "and N more".
NAMED_FILES = 3


class DatasetStats:
    """Counts what a dataset made by `make_dataset` read, delivered and lost.

    The counters are TensorFlow variables updated inside the pipeline, so
    they can be read during iteration. `as_dict` is exact once the dataset
    is exhausted; mid-stream its `examples_skipped` also counts records in
    flight, while `skipped_so_far()` is exact in a deterministic stream.
    `expected` comes from the shards' sidecar files (None without them).
    `damage` counts the damaged regions skipped inside shards (a CRC error,
    a cut), each of which loses one record or more.
    """

    def __init__(self, expected=None):
        self.expected = expected
        self.records_read = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.examples_delivered = tf.Variable(0, dtype=tf.int64, trainable=False)
        # The stream position of the last example delivered, and how this
        # pipeline's positions are laid out: (first, step) after skip and shard.
        self.last_position = tf.Variable(-1, dtype=tf.int64, trainable=False)
        self.positions = (0, 1)
        self.damage = record_reader.DamageCounter()

    def as_dict(self):
        read = int(self.records_read.numpy())
        delivered = int(self.examples_delivered.numpy())
        return {
            "records_read": read,
            "examples_delivered": delivered,
            # Records whose image or caption could not be decoded.
            "examples_skipped": read - delivered,
            # Records lost to damaged files (needs the sidecar counts).
            "records_unreadable": None if self.expected is None else self.expected - read,
        }

    def skipped_so_far(self):
        """Records skipped before the last delivered example (deterministic order)."""
        last = int(self.last_position.numpy())
        first, step = self.positions
        if last < first:
            return 0
        return (last - first) // step + 1 - int(self.examples_delivered.numpy())

    def summary(self, exhausted=True):
        """One line for a log: what was delivered, skipped and lost."""
        counts = self.as_dict()
        skipped = counts["examples_skipped"] if exhausted else self.skipped_so_far()
        line = (f"{counts['examples_delivered']} examples delivered, {skipped} skipped "
                "(undecodable image, or no usable caption or ids)")
        if exhausted:
            line = f"{counts['records_read']} records read, " + line
        if self.damage.regions:
            line += (f"; {self.damage.regions} damaged region(s) skipped in "
                     f"{name_files(sorted(self.damage.files))}")
        if exhausted and counts["records_unreadable"]:
            line += f"; {counts['records_unreadable']} record(s) unreadable"
        return line


def name_files(files):
    """`a, b, c and N more`: files named in a message."""
    named = ", ".join(files[:NAMED_FILES])
    more = len(files) - NAMED_FILES
    count = f"{len(files)} files: " if len(files) > 1 else ""
    return count + named + (f" and {more} more" if more > 0 else "")
