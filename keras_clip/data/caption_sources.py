"""Where image–caption pairs come from: caption tables and WebDataset tars.

Each source yields `RawPair`s: raw image bytes and raw caption bytes, or the
reason the pair is unusable, so the writer can count every skip.
"""

import collections
import csv
import json
import os
import posixpath
import tarfile

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
    folder) and may not leave it.
    """
    image_root = image_root or os.path.dirname(os.path.abspath(table_path))
    captions = collections.OrderedDict()
    for row in _table_rows(table_path):
        captions.setdefault(row["filepath"], []).append(row["caption"])
    for filepath, texts in captions.items():
        encoded = [text.encode("utf-8") for text in texts]
        if _is_unsafe(filepath):
            yield RawPair(filepath, table_path, None, encoded, "path outside the image folder")
            continue
        try:
            with open(os.path.join(image_root, filepath), "rb") as file:
                image = file.read()
        except OSError:
            yield RawPair(filepath, table_path, None, encoded, "image file missing")
            continue
        yield RawPair(filepath, table_path, image, encoded, None)


def _table_rows(table_path):
    with open(table_path, encoding="utf-8", newline="") as file:
        if table_path.endswith(".jsonl"):
            rows = (json.loads(line) for line in file if line.strip())
        else:
            delimiter = "\t" if table_path.endswith((".tsv", ".tab")) else ","
            rows = csv.DictReader(file, delimiter=delimiter)
        for number, row in enumerate(rows, start=1):
            if "filepath" not in row or "caption" not in row:
                raise ValueError(
                    f"{table_path}: row {number} lacks a 'filepath' or 'caption' "
                    f"column (it has {sorted(row)})."
                )
            yield row


def read_webdataset(tar_paths):
    """Pairs from WebDataset/img2dataset tars: `KEY.jpg` beside `KEY.txt`.

    Members are read, never extracted; a member whose path is absolute or
    climbs out of the archive (`../x`) is rejected and reported.
    """
    for tar_path in tar_paths:
        members = collections.OrderedDict()
        with tarfile.open(tar_path) as archive:
            for member in archive:
                if not member.isfile():
                    continue
                if _is_unsafe(member.name):
                    yield RawPair(member.name, tar_path, None, [], "path outside the archive")
                    continue
                key, extension = posixpath.splitext(member.name)
                data = archive.extractfile(member).read()
                members.setdefault(key, {})[extension.lower()] = data
        for key, files in members.items():
            yield _webdataset_pair(key, tar_path, files)


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
