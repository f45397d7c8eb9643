"""Where image–caption pairs come from: caption tables and WebDataset tars.

Each source yields `RawPair`s: raw image bytes and raw caption bytes, or the
reason the pair is unusable, so the writer can count every skip.
"""

import collections
import csv
import io
import json
import os
import posixpath
import tarfile

from keras_clip import files

# A caption table's field may hold this much (the csv module's default
# limit is 128 KiB, less than a long caption; captions are cut later).
MAX_FIELD_BYTES = 16 * 2**20
# A tar member larger than this is skipped, not read into memory.
MAX_MEMBER_BYTES = 256 * 2**20
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")

RawPair = collections.namedtuple(
    "RawPair", ["key", "source", "image", "captions", "problem"]
)
RawPair.__doc__ = """One pair as read: `image` bytes, `captions` list of bytes,
or `problem` (a short reason) when the source itself is unusable."""


def _is_unsafe(path):
    """True for absolute paths and paths that climb out of their root."""
    normalized = posixpath.normpath(path.replace("\\", "/"))
    return os.path.isabs(path) or normalized == ".." or normalized.startswith("../")


def read_caption_table(table_path, image_root=None):
    """Pairs from a CSV, TSV or JSONL table with `filepath` and `caption`.

    Rows naming the same file are one pair with several captions (as in
    COCO). `filepath` is relative to `image_root` (default: the table's
    folder) and may not leave it. A missing column is an error (the table
    is not a caption table); a bad row (too few fields, a non-text value,
    broken JSON) is a counted skip, and a caption that is not UTF-8 is
    skipped later with that reason. A UTF-8 byte-order mark is fine.
    """
    image_root = image_root or files.dirname(files.absolute(table_path))
    captions = collections.OrderedDict()
    for number, row, problem in _table_rows(table_path):
        if problem:
            yield RawPair(f"row {number}", table_path, None, [], problem)
            continue
        captions.setdefault(row["filepath"], []).append(row["caption"])
    for filepath, texts in captions.items():
        # Undecodable bytes were kept as surrogates: back to the file's bytes.
        encoded = [text.encode("utf-8", "surrogateescape") for text in texts]
        if _is_unsafe(filepath):
            yield RawPair(filepath, table_path, None, encoded, "path outside the image folder")
            continue
        try:
            with files.open(files.join(image_root, filepath), "rb") as file:
                image = file.read()
        except (OSError, ValueError):  # ValueError: a NUL byte in the path
            yield RawPair(filepath, table_path, None, encoded, "image file missing")
            continue
        yield RawPair(filepath, table_path, image, encoded, None)


def _table_rows(table_path):
    """`(row number, {"filepath", "caption"} or None, problem or None)` per row."""
    # surrogateescape: a stray latin-1 byte is one row's problem, not the table's.
    with io.TextIOWrapper(files.open(table_path, "rb"), encoding="utf-8-sig",
                          errors="surrogateescape", newline="") as file:
        if table_path.endswith(".jsonl"):
            rows = _json_rows(table_path, file)
        else:
            rows = _csv_rows(table_path, file)
        for number, row in rows:
            if isinstance(row, str):
                yield number, None, row
                continue
            problem = next((f"row has no {key}" for key in ("filepath", "caption")
                            if row.get(key) is None), None)
            problem = problem or next(
                (f"{key} is not text" for key in ("filepath", "caption")
                 if not isinstance(row[key], str)), None)
            if not problem and not row["filepath"].strip():
                problem = "row has no filepath"
            yield number, None if problem else row, problem


def _csv_rows(table_path, file):
    delimiter = "\t" if table_path.endswith((".tsv", ".tab")) else ","
    csv.field_size_limit(MAX_FIELD_BYTES)
    reader = csv.DictReader(file, delimiter=delimiter)
    try:
        header = reader.fieldnames or []
    except csv.Error as error:
        raise ValueError(f"{table_path}: unreadable header ({error}).") from None
    _check_columns(table_path, header, "header")
    number = 0
    while True:
        number += 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:  # e.g. a field over MAX_FIELD_BYTES
            raise ValueError(f"{table_path}: row {number}: {error}.") from None
        if None in row:  # more fields than the header has columns: ignored
            del row[None]
        yield number, row


def _json_rows(table_path, file):
    checked = False
    for number, line in enumerate(file, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            yield number, "row is not valid JSON"
            continue
        if not isinstance(row, dict):
            yield number, "row is not a JSON object"
            continue
        if not checked:  # the first object says which columns the table has
            _check_columns(table_path, list(row), "first row")
            checked = True
        yield number, row


def _check_columns(table_path, columns, where):
    missing = [key for key in ("filepath", "caption") if key not in columns]
    if missing:
        raise ValueError(
            f"{table_path}: the {where} lacks a {' and a '.join(map(repr, missing))} "
            f"column (it has {sorted(map(str, columns))}); a caption table needs "
            f"'filepath' and 'caption'."
        )

def read_webdataset(tar_paths):
    """Pairs from WebDataset/img2dataset tars: `KEY.jpg` beside `KEY.txt`.

    Members are read, never extracted, one sample at a time (a sample's
    files are adjacent, as WebDataset writes them), so memory holds one
    sample. A member whose path is absolute or climbs out of the archive
    (`../x`) is rejected and reported; a key seen again later in the same
    tar, or a file repeated within a sample, is a counted skip (the first
    copy is kept). A tar that is not a tar, or is cut or damaged part-way,
    loses only what follows the damage: the samples before it are
    delivered and the damage is counted.
    """
    for tar_path in tar_paths:
        yield from _tar_pairs(tar_path)


def _tar_pairs(tar_path):
    with files.open(tar_path, "rb") as raw:
        yield from _archive_pairs(tar_path, raw)


def _archive_pairs(tar_path, raw):
    try:
        # ignore_zeros: past a damaged header, look for the next valid one
        # (512-byte blocks) instead of ending the archive there in silence.
        archive = tarfile.open(fileobj=raw, ignore_zeros=True)
    except (tarfile.TarError, OSError, EOFError):
        yield RawPair(tar_path, tar_path, None, [], "unreadable tar file")
        return
    samples = _TarSamples(tar_path)
    with archive:
        position, members = 0, 0  # where the next member should start
        try:
            for member in archive:
                if _has_data(archive.fileobj, position, member.offset):
                    yield RawPair(tar_path, tar_path, None, [], "damaged region in the tar")
                position = member.offset_data + -(-member.size // tarfile.BLOCKSIZE) * 512
                members += 1
                yield from samples.add(member, archive)
            if _has_data(archive.fileobj, position, None):
                raise tarfile.ReadError("data after the last whole member")
        except (tarfile.TarError, OSError, EOFError):
            yield from samples.cut_off()
            reason = "tar cut short or damaged" if members else "unreadable tar file"
            yield RawPair(tar_path, tar_path, None, [], reason)
            return
    yield from samples.finish()


class _TarSamples:
    """Groups a tar's members into samples (a sample's files are adjacent)."""

    def __init__(self, tar_path):
        self.tar_path, self.seen = tar_path, set()
        self.key, self.files = None, None  # the current sample's files, by extension

    def add(self, member, archive):
        """The pairs finished or refused by reading `member`."""
        if not member.isfile():
            return
        if _is_unsafe(member.name):
            yield self._refused(member.name, "path outside the archive")
            return
        if member.size > MAX_MEMBER_BYTES:
            yield self._refused(member.name, f"tar member over {MAX_MEMBER_BYTES // 2**20} MiB")
            return
        key, extension = posixpath.splitext(member.name)
        if key != self.key:
            yield from self.finish()
            self.key, self.files = key, {}
            if key in self.seen:
                yield self._refused(key, "duplicate key in the tar")
                self.files = None  # the rest of this sample is skipped with it
            self.seen.add(key)
        if self.files is None:
            return
        if extension.lower() in self.files:
            yield self._refused(member.name, "duplicate file in a sample")
            return
        self.files[extension.lower()] = archive.extractfile(member).read()

    def finish(self):
        """The current sample, if any, as a pair."""
        if self.files is not None:
            yield _webdataset_pair(self.key, self.tar_path, self.files)
        self.files = None

    def cut_off(self):
        """After damage: the current sample if it is whole already, else its loss."""
        if self.files is None:
            return
        pair = _webdataset_pair(self.key, self.tar_path, self.files)
        self.files = None
        yield self._refused(self.key, "sample cut off by tar damage") if pair.problem else pair

    def _refused(self, key, reason):
        return RawPair(key, self.tar_path, None, [], reason)


def _has_data(fileobj, start, end):
    """True if the archive's bytes `[start, end)` are not all zero (end None: EOF).

    Members follow each other exactly; a gap holding data is a damaged
    header that tarfile skipped, and data after the last member a damaged
    tail. Zero blocks are the archive's end marker and padding.
    """
    if end is not None and end <= start:
        return False
    fileobj.seek(start)
    remaining = None if end is None else end - start
    while remaining is None or remaining > 0:
        chunk = fileobj.read(2**20 if remaining is None else min(2**20, remaining))
        if not chunk:
            return False
        if chunk.count(0) != len(chunk):
            return True
        if remaining is not None:
            remaining -= len(chunk)
    return False


def _webdataset_pair(key, tar_path, files):
    images = [ext for ext in IMAGE_EXTENSIONS if ext in files]
    if not images:
        return RawPair(key, tar_path, None, [], "no image in the sample")
    if ".txt" in files:
        captions = [files[".txt"]]
    elif ".json" in files:
        try:
            captions = [json.loads(files[".json"])["caption"].encode("utf-8")]
        except (ValueError, KeyError, TypeError, AttributeError):
            return RawPair(key, tar_path, None, [], "no caption in the sample")
    else:
        return RawPair(key, tar_path, None, [], "no caption in the sample")
    return RawPair(key, tar_path, files[images[0]], captions, None)


def count_table_rows(table_path):
    """Rows of a caption table: a quick first pass, for a progress total."""
    return sum(1 for _ in _table_rows(table_path))


def table_captions(table_path):
    """The caption of every well-formed row, as text (to train a tokenizer on)."""
    for _, row, _ in _table_rows(table_path):
        if row is not None and row["caption"].strip():
            yield row["caption"]
