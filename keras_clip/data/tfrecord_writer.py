"""Writes image–caption pairs as sharded TFRecords, counting every skip."""

import collections
import concurrent.futures
import io
import json
import os
import time

import keras
import tensorflow as tf
from PIL import Image

from keras_clip.data import image_headers, image_ops, tfrecord_schema
from keras_clip.data.shard_writer import (
    PARTIAL_SUFFIX,
    ShardWriter,
    remove_stale_shards,
    write_atomically,
)
from keras_clip.data.text_cleaning import clean_text
from keras_clip.progress_line import ProgressLine, duration

# Formats TensorFlow decodes itself; anything else is re-encoded.
TF_FORMATS = {"JPEG", "PNG", "GIF", "BMP", "WEBP"}
# Images over this are refused: the same limit the pipelines decode under.
MAX_PIXELS = image_headers.MAX_IMAGE_PIXELS


class WriteSummary:
    """What `write_tfrecords` did: counts, skip reasons, shard paths."""

    def __init__(self):
        self.written = 0
        self.skipped = collections.Counter()
        self.changed = collections.Counter()
        self.shards = []

    def as_dict(self):
        return {
            "written": self.written,
            "skipped": dict(self.skipped),
            "changed": dict(self.changed),
            "shards": self.shards,
        }

    def __str__(self):
        shards = f"{len(self.shards)} shard" + ("" if len(self.shards) == 1 else "s")
        lines = [f"written: {self.written} pairs in {shards}"]
        lines += [f"skipped: {n} ({reason})" for reason, n in self.skipped.most_common()]
        lines += [f"changed: {n} ({what})" for what, n in self.changed.most_common()]
        return "\n".join(lines)


def prepare_pair(pair, max_shorter_side=512, max_caption_chars=1000, tokenizer=None):
    """A `RawPair` → `(serialized record, changes)`, or `(None, skip reason)`."""
    if pair.problem:
        return None, pair.problem
    captions, changes, undecodable = [], [], 0
    for raw in pair.captions:
        try:
            # Only what can survive the cut is cleaned: ftfy costs ~1 µs a character.
            text = clean_text(raw.decode("utf-8"), enough=max_caption_chars)
        except UnicodeDecodeError:
            undecodable += 1  # this caption only: the pair's others may be fine
            continue
        if len(text) > max_caption_chars:
            text = text[:max_caption_chars]
            changes.append("caption cut to max_caption_chars")
        if text:
            captions.append(text)
    if not captions:
        return None, "caption is not UTF-8" if undecodable else "empty caption"
    changes += ["caption dropped: not UTF-8"] * undecodable
    try:
        image, width, height, image_changes = _prepare_image(pair.image, max_shorter_side)
    # Untrusted bytes into PIL's many parsers: besides OSError, damaged files
    # raise struct.error, IndexError, EOFError, ZeroDivisionError, ...
    except Exception:  # noqa: BLE001 - any failure on this image is its pair's skip
        return None, "unreadable image"
    if image is None:
        return None, image_changes
    token_ids = None
    if tokenizer is not None:
        token_ids = keras.ops.convert_to_numpy(tokenizer(captions))
    record = tfrecord_schema.serialize_example(
        image, captions, pair.key, pair.source, width, height, token_ids
    )
    return record, changes + image_changes


def _prepare_image(data, max_shorter_side):
    if not data:
        return None, 0, 0, "empty image file"
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:  # PIL's own limit, far above ours
        return None, 0, 0, f"image over {MAX_PIXELS:,} pixels"
    try:
        width, height = image.size
        if width * height > MAX_PIXELS:
            return None, 0, 0, f"image over {MAX_PIXELS:,} pixels"
        image.load()  # decodes fully: catches truncated files
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None, 0, 0, "unreadable image"
    changes = []
    if max_shorter_side and min(width, height) > max_shorter_side:
        scale = max_shorter_side / min(width, height)
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
        image = _to_rgb(image).resize((width, height), Image.BICUBIC)
        changes.append("downscaled")
    elif image.format in TF_FORMATS and _tensorflow_decodes(data):
        return data, width, height, changes
    else:
        changes.append(f"re-encoded from {image.format or 'a format TF cannot read'}")
        image = _to_rgb(image)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95)
    return buffer.getvalue(), width, height, changes


def _to_rgb(image):
    if image.mode in ("I;16", "I;16B", "I"):
        image = image.point(lambda v: v / 256).convert("L")
    return image.convert("RGB")


def _tensorflow_decodes(data):
    """True if the pipelines will decode `data` as it is (within the pixel limit:
    a GIF's canvas, which TensorFlow sizes from all its frames, can exceed
    the size PIL reports)."""
    try:
        _decode_as_training_does(tf.constant(data))
        return True
    except tf.errors.InvalidArgumentError:
        return False


# One graph: run eagerly, the header checks would be dozens of small ops.
_decode_as_training_does = tf.function(
    lambda data: tf.shape(image_ops.decode_rgb(data, dct_method="INTEGER_FAST")),
    input_signature=[tf.TensorSpec([], tf.string)])


def write_tfrecords(pairs, output_prefix, shard_size_mb=100, num_workers=4,
                    max_shorter_side=512, max_caption_chars=1000, tokenizer=None,
                    expected_pairs=None, verbose=True):
    """Encodes `pairs` in parallel into `{output_prefix}-NNNNN.tfrecord` shards.

    Each shard is written under a temporary name and renamed once it is
    whole, with its sidecar; the summary comes last. A run that stops
    part-way (an error, SIGKILL) leaves only whole shards and no summary,
    and running it again writes the same shards as an uninterrupted run:
    the output depends only on the input and the options, and numbered
    shards of an earlier run at this prefix that this run did not write are
    removed at the end (they would mix into `-*.tfrecord`).

    Args:
        pairs: iterable of `caption_sources.RawPair`.
        output_prefix: path prefix of the shards (folders are created).
        shard_size_mb: a shard is closed once it holds this many megabytes.
        num_workers: threads validating and re-encoding images.
        max_shorter_side: larger images are downscaled to this shorter side
            (0: keep every image's size).
        max_caption_chars: longer captions are cut (the tokenizer keeps 77
            tokens anyway).
        tokenizer: optional `CLIPTokenizer`; stores `token_ids` too.
        expected_pairs: optional total, for the progress bar.

    Returns:
        A `WriteSummary`; it is also written to `{output_prefix}-summary.json`.
    """
    _check_options(shard_size_mb, num_workers, max_shorter_side, max_caption_chars)
    _start_output(output_prefix)
    summary = WriteSummary()
    shard = ShardWriter(output_prefix, max_bytes=shard_size_mb * 2**20)
    progress = _PairProgress(expected_pairs, verbose)
    with concurrent.futures.ThreadPoolExecutor(num_workers) as pool:
        results = _ordered_map(
            pool,
            lambda p: prepare_pair(p, max_shorter_side, max_caption_chars, tokenizer),
            pairs,
            window=8 * num_workers,
        )
        for count, (record, outcome) in enumerate(results, start=1):
            if record is None:
                summary.skipped[outcome] += 1
            else:
                shard.write(record)
                summary.written += 1
                summary.changed.update(outcome)
            progress.update(count, summary)
    progress.finish(summary)
    summary.shards = shard.close()
    removed = remove_stale_shards(output_prefix, summary.shards)
    write_atomically(f"{output_prefix}-summary.json",
                      json.dumps(summary.as_dict(), indent=2))
    if verbose:
        print(summary)
        if removed:
            print(f"removed {removed} shard(s) of an earlier run at {output_prefix}")
    return summary


class _PairProgress:
    """`pairs N/TOTAL (P%)  written W  skipped S  R pairs/s  T left`, as it goes."""

    def __init__(self, expected_pairs, verbose):
        self.expected, self.verbose = expected_pairs, verbose
        self.line = ProgressLine(every=1000)
        self.count, self.started = 0, time.monotonic()

    def update(self, count, summary, last=False):
        self.count = count
        if self.verbose:
            self.line.update(count, lambda: self._text(summary), last=last)

    def finish(self, summary):
        self.update(self.count, summary, last=True)
        if self.verbose:
            self.line.end()

    def _text(self, summary):
        elapsed = time.monotonic() - self.started
        rate = self.count / elapsed if elapsed > 0 else 0.0
        done = f"pairs {self.count:,}"
        if self.expected:
            done += f"/{self.expected:,} ({100 * self.count // max(self.expected, 1)}%)"
        parts = [done, f"written {summary.written:,}",
                 f"skipped {sum(summary.skipped.values()):,}", f"{rate:,.0f} pairs/s"]
        if self.expected and rate and self.count < self.expected:
            parts.append(f"{duration((self.expected - self.count) / rate)} left")
        return "  ".join(parts)


def _check_options(shard_size_mb, num_workers, max_shorter_side, max_caption_chars):
    problems = []
    if not shard_size_mb > 0:
        problems.append(f"shard size must be positive, got {shard_size_mb}")
    if num_workers < 1:
        problems.append(f"workers must be at least 1, got {num_workers}")
    if max_shorter_side < 0:
        problems.append(f"max shorter side must be 0 (keep sizes) or more, got "
                        f"{max_shorter_side}")
    if max_caption_chars < 1:
        problems.append(f"max caption chars must be at least 1, got {max_caption_chars}")
    if problems:
        raise ValueError("; ".join(problems) + ".")


def _start_output(output_prefix):
    """Creates the folder; drops partial shards and the summary of an earlier run."""
    folder = os.path.dirname(output_prefix) or "."
    if tf.io.gfile.exists(folder) and not tf.io.gfile.isdir(folder):
        raise NotADirectoryError(f"Cannot write shards under {folder!r}: it is a file.")
    tf.io.gfile.makedirs(folder)
    for stale in tf.io.gfile.glob(f"{output_prefix}-*{PARTIAL_SUFFIX}"):
        tf.io.gfile.remove(stale)
    summary = f"{output_prefix}-summary.json"
    if tf.io.gfile.exists(summary):
        tf.io.gfile.remove(summary)


def _ordered_map(pool, function, items, window):
    """`pool.map` that keeps at most `window` items in flight (and in memory)."""
    pending = collections.deque()
    for item in items:
        pending.append(pool.submit(function, item))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
