"""Hostile WebDataset tars through `keras-clip make-tfrecords --webdataset`.

A damaged or odd tar loses only what it must: every whole sample before the
damage is written, each loss is counted with its reason, and the other tars
are converted as if the bad one were not there.
"""

import io
import json
import tarfile

import numpy as np
import pytest

from tests.hostile.corpus import assert_user_error, encode, noise, run_cli, summary_of

pytestmark = pytest.mark.backend_independent


def member(name, data, kind=tarfile.REGTYPE, target=""):
    info = tarfile.TarInfo(name)
    info.size, info.type, info.linkname = len(data), kind, target
    return info, io.BytesIO(data)


def sample(key, seed, caption=None):
    return [member(f"{key}.jpg", encode(noise(seed=seed))),
            member(f"{key}.txt", (caption or f"caption {key}").encode())]


def write_tar(path, members, mode="w"):
    with tarfile.open(path, mode) as archive:
        for info, data in members:
            archive.addfile(info, data if info.isfile() else None)
    return path


def good_tar(folder, name="good.tar", count=3):
    return write_tar(folder / name, [m for i in range(count) for m in sample(f"g{i}", i)])


def cut_inside(path, member_index, fraction=0.5):
    """The tar cut part-way through the data of its `member_index`-th member."""
    with tarfile.open(path) as archive:
        target = archive.getmembers()[member_index]
    data = path.read_bytes()
    path.write_bytes(data[: target.offset_data + int(target.size * fraction)])
    return path


def five_samples(folder, name="five.tar"):
    return write_tar(folder / name, [m for i in range(5) for m in sample(f"f{i}", 10 + i)])


CASES = [  # (id, tar maker → path, pairs written from it, skipped reasons)
    ("cut-in-third-image", lambda f: cut_inside(five_samples(f), 4), 2,
     {"sample cut off by tar damage": 1, "tar cut short or damaged": 1}),
    ("cut-in-a-caption", lambda f: cut_inside(five_samples(f), 3, 0.0), 1,
     {"sample cut off by tar damage": 1, "tar cut short or damaged": 1}),
    ("cut-in-first-image", lambda f: _cut_bytes(five_samples(f), 700), 0,
     {"sample cut off by tar damage": 1, "tar cut short or damaged": 1}),
    ("cut-in-a-header", lambda f: _cut_in_header(five_samples(f), 2), 1,
     {"tar cut short or damaged": 1}),
    # f2.jpg's header is noise: tarfile resyncs at f2.txt's; f3 and f4 are kept.
    ("garbage-header", lambda f: _garbage_header(five_samples(f), 4), 4,
     {"damaged region in the tar": 1, "no image in the sample": 1}),
    ("random-bytes", lambda f: _raw(f, np.random.default_rng(0).bytes(5000)), 0,
     {"unreadable tar file": 1}),
    ("empty-file", lambda f: _raw(f, b""), 0, {"unreadable tar file": 1}),
    ("zero-blocks", lambda f: _raw(f, b"\0" * 10240), 0, {}),
    ("duplicate-key-later", lambda f: write_tar(
        f / "d.tar", sample("a", 1) + sample("b", 2) + sample("a", 3, "again")), 2,
     {"duplicate key in the tar": 1}),
    ("duplicate-file-in-sample", lambda f: write_tar(
        f / "d.tar", sample("a", 1) + [member("a.txt", b"second caption")] + sample("b", 2)),
     2, {"duplicate file in a sample": 1}),
    ("absolute-member", lambda f: write_tar(
        f / "a.tar", sample("a", 1) + [member("/etc/x.txt", b"no")]), 1,
     {"path outside the archive": 1}),
    ("climbing-member", lambda f: write_tar(
        f / "a.tar", [member("../up.jpg", encode(noise()))] + sample("a", 1)), 1,
     {"path outside the archive": 1}),
    ("symlink-and-folder-members", lambda f: write_tar(
        f / "a.tar", [member("dir", b"", tarfile.DIRTYPE),
                      member("link.jpg", b"", tarfile.SYMTYPE, "/etc/passwd")]
        + sample("a", 1)), 1, {}),
    ("image-without-caption", lambda f: write_tar(
        f / "a.tar", [member("lonely.jpg", encode(noise()))] + sample("a", 1)), 1,
     {"no caption in the sample": 1}),
    ("caption-without-image", lambda f: write_tar(
        f / "a.tar", [member("lonely.txt", b"words")] + sample("a", 1)), 1,
     {"no image in the sample": 1}),
    ("json-caption", lambda f: write_tar(
        f / "a.tar", [member("j.jpg", encode(noise())),
                      member("j.json", json.dumps({"caption": "from json"}).encode())]), 1, {}),
    ("json-caption-not-text", lambda f: write_tar(
        f / "a.tar", [member("j.jpg", encode(noise())),
                      member("j.json", b'{"caption": 5}')] + sample("a", 1)), 1,
     {"no caption in the sample": 1}),
    ("json-broken", lambda f: write_tar(
        f / "a.tar", [member("j.jpg", encode(noise())), member("j.json", b"{")]
        + sample("a", 1)), 1, {"no caption in the sample": 1}),
    ("caption-not-utf8", lambda f: write_tar(
        f / "a.tar", [member("l.jpg", encode(noise())), member("l.txt", b"caf\xe9")]
        + sample("a", 1)), 1, {"caption is not UTF-8": 1}),
    ("empty-image-member", lambda f: write_tar(
        f / "a.tar", [member("e.jpg", b""), member("e.txt", b"x")] + sample("a", 1)), 1,
     {"empty image file": 1}),
    ("broken-image-member", lambda f: write_tar(
        f / "a.tar", [member("e.jpg", b"\xff\xd8junk"), member("e.txt", b"x")]
        + sample("a", 1)), 1, {"unreadable image": 1}),
    ("gzip-tar", lambda f: write_tar(f / "z.tar", sample("a", 1) + sample("b", 2), "w:gz"),
     2, {}),
    ("tar-in-a-tar", lambda f: write_tar(
        f / "t.tar", [member("inner.tar", _inner_tar(f))] + sample("a", 1)), 1,
     {"no image in the sample": 1}),
]


def _inner_tar(folder):
    (folder / "inner").mkdir()
    return good_tar(folder / "inner").read_bytes()


def _raw(folder, data):
    path = folder / "raw.tar"
    path.write_bytes(data)
    return path


def _cut_in_header(path, index):
    with tarfile.open(path) as archive:
        offset = archive.getmembers()[index].offset
    return _cut_bytes(path, offset + 100)


def _garbage_header(path, index):
    with tarfile.open(path) as archive:
        offset = archive.getmembers()[index].offset
    data = bytearray(path.read_bytes())
    data[offset:offset + 512] = np.random.default_rng(1).bytes(512)
    path.write_bytes(bytes(data))
    return path


def _cut_bytes(path, size):
    path.write_bytes(path.read_bytes()[:size])
    return path


@pytest.mark.parametrize("name,make,written,skipped", CASES, ids=[c[0] for c in CASES])
def test_a_bad_tar_loses_only_what_it_must(name, make, written, skipped, tmp_path, capsys):
    good_tar(tmp_path, "a-good.tar")
    make(tmp_path)
    prefix = tmp_path / "out" / "p"
    code, out, _ = run_cli(capsys, ["make-tfrecords", "--webdataset", tmp_path / "*.tar",
                                    "--output", prefix])
    summary = summary_of(prefix)
    assert code == 0, out
    assert summary["written"] == 3 + written
    assert summary["skipped"] == {k: v for k, v in skipped.items() if v}


def test_no_tar_matching_is_one_line(tmp_path, capsys):
    assert_user_error(capsys, ["make-tfrecords", "--webdataset", tmp_path / "*.tar",
                               "--output", tmp_path / "p"], "No tar shards match")
