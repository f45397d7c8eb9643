"""Hostile caption tables through `keras-clip make-tfrecords --table`.

Each case is a table with a defect beside two good rows (`a.jpg`, `b.png`):
the defect is a counted skip and both good pairs are written, or the whole
table is refused with one line that names it.
"""

import json

import pytest

from tests.hostile.corpus import (
    assert_user_error,
    encode,
    noise,
    run_cli,
    summary_of,
    write_jsonl,
    write_table,
)

pytestmark = pytest.mark.backend_independent

GOOD = [("a.jpg", "a red square"), ("b.png", "a blue circle")]


def images(folder):
    (folder / "a.jpg").write_bytes(encode(noise(seed=1)))
    (folder / "b.png").write_bytes(encode(noise(seed=2), "PNG"))


def csv_rows(*bad):
    return lambda folder: write_table(folder, [GOOD[0], *bad, GOOD[1]])


def raw_csv(text):
    def make(folder):
        path = folder / "captions.csv"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return path
    return make


def jsonl_rows(*bad):
    good = [{"filepath": p, "caption": c} for p, c in GOOD]
    return lambda folder: write_jsonl(folder, [good[0], *bad, good[1]])


# (id, table maker, skipped reasons {reason: count}); two good pairs written.
SKIPPED = [
    ("ragged-row", raw_csv("filepath,caption\na.jpg,a red square\nlonely.jpg\n"
                           "b.png,a blue circle\n"), {"row has no caption": 1}),
    ("extra-fields", raw_csv("filepath,caption\na.jpg,a red square,x,y\n"
                             "b.png,a blue circle\n"), {}),
    ("latin-1-caption", csv_rows(("c.jpg", b"caf\xe9 cr\xe8me")),
     {"image file missing": 1}),
    ("latin-1-second-caption", csv_rows(("a.jpg", b"caf\xe9 cr\xe8me")), {}),
    ("latin-1-path", csv_rows((b"caf\xe9.jpg", "a photo")), {"image file missing": 1}),
    ("utf8-bom", raw_csv("\ufefffilepath,caption\na.jpg,a red square\nb.png,a blue circle\n"),
     {}),
    ("crlf", raw_csv("filepath,caption\r\na.jpg,a red square\r\nb.png,a blue circle\r\n"), {}),
    ("caption-200kb", csv_rows(("c.jpg", "word " * 40_000)), {"image file missing": 1}),
    ("empty-caption", csv_rows(("a.jpg", "")), {}),
    ("whitespace-caption", csv_rows(("c.jpg", " \t ")), {"image file missing": 1}),
    ("only-blank-captions", lambda f: write_table(f, [("a.jpg", " "), ("b.png", "   "),
                                                      GOOD[0], GOOD[1]]), {}),
    ("quoted-newline", csv_rows(("c.jpg", "line one\nline two")), {"image file missing": 1}),
    ("nul-in-caption", csv_rows(("c.jpg", "a\x00b")), {"image file missing": 1}),
    ("nul-in-path", csv_rows(("c\x00.jpg", "a photo")), {"image file missing": 1}),
    ("absolute-path", csv_rows(("/etc/passwd", "secrets")),
     {"path outside the image folder": 1}),
    ("climbing-path", csv_rows(("../../x.jpg", "up")), {"path outside the image folder": 1}),
    ("backslash-climb", csv_rows(("..\\x.jpg", "up")), {"path outside the image folder": 1}),
    ("empty-path", csv_rows(("", "no file")), {"row has no filepath": 1}),
    ("blank-path", csv_rows(("   ", "no file")), {"row has no filepath": 1}),
    ("path-is-a-folder", csv_rows((".", "the folder itself")), {"image file missing": 1}),
    ("missing-image", csv_rows(("nope.jpg", "gone")), {"image file missing": 1}),
    ("emoji-and-rtl", csv_rows(("a.jpg", "🐱 قطة على السجادة")), {}),
    ("html-entities", csv_rows(("a.jpg", "fish &amp; chips &lt;3")), {}),
    ("control-chars", csv_rows(("a.jpg", "\x07\x1b[31mred\x1b[0m")), {}),
    ("tsv", lambda f: _tsv(f), {}),
    ("jsonl-number-caption", jsonl_rows({"filepath": "a.jpg", "caption": 42}),
     {"caption is not text": 1}),
    ("jsonl-number-path", jsonl_rows({"filepath": 7, "caption": "seven"}),
     {"filepath is not text": 1}),
    ("jsonl-null-caption", jsonl_rows({"filepath": "a.jpg", "caption": None}),
     {"row has no caption": 1}),
    ("jsonl-list-caption", jsonl_rows({"filepath": "a.jpg", "caption": ["x", "y"]}),
     {"caption is not text": 1}),
    ("jsonl-missing-key", jsonl_rows({"filepath": "a.jpg"}), {"row has no caption": 1}),
    ("jsonl-broken-line", jsonl_rows('{"filepath": "a.jpg", "caption": '),
     {"row is not valid JSON": 1}),
    ("jsonl-array-line", jsonl_rows('["a.jpg", "x"]'), {"row is not a JSON object": 1}),
    ("jsonl-nan", jsonl_rows('{"filepath": "a.jpg", "caption": NaN}'),
     {"caption is not text": 1}),
    ("jsonl-blank-lines", jsonl_rows("", "   "), {}),
    ("jsonl-extra-keys", jsonl_rows({"filepath": "a.jpg", "caption": "x", "url": 3}), {}),
]


def _tsv(folder):
    path = folder / "captions.tsv"
    path.write_text("filepath\tcaption\na.jpg\ta red, square\nb.png\ta blue circle\n")
    return path


@pytest.mark.parametrize("name,make,skipped", SKIPPED, ids=[c[0] for c in SKIPPED])
def test_a_bad_row_is_a_counted_skip_and_good_rows_are_written(name, make, skipped,
                                                               tmp_path, capsys):
    images(tmp_path)
    table = make(tmp_path)
    prefix = tmp_path / "out" / "pairs"
    code, out, _ = run_cli(capsys, ["make-tfrecords", "--table", table, "--output", prefix])
    assert code == 0
    summary = summary_of(prefix)
    assert summary["skipped"] == skipped
    assert summary["written"] == 2
    if name == "latin-1-second-caption":  # a.jpg keeps its good caption
        assert summary["changed"] == {"caption dropped: not UTF-8": 1}
    assert f"written: {summary['written']}" in out


# (id, table maker, phrases of the one-line error)
REFUSED = [
    ("no-columns", raw_csv("path,text\na.jpg,x\n"), ["lacks a 'filepath' and a 'caption'"]),
    ("no-caption-column", raw_csv("filepath,text\na.jpg,x\n"), ["lacks a 'caption'"]),
    ("empty-file", raw_csv(""), ["lacks a 'filepath'"]),
    ("binary-garbage", raw_csv(bytes(range(256)) * 4), ["lacks"]),
    ("jsonl-wrong-keys", lambda f: write_jsonl(f, [{"image": "a.jpg", "text": "x"}]),
     ["first row lacks", "'filepath'"]),
    ("field-over-16mib", csv_rows(("a.jpg", "x" * (17 * 2**20))), ["row 2", "field"]),
]


@pytest.mark.parametrize("name,make,phrases", REFUSED, ids=[c[0] for c in REFUSED])
def test_a_table_that_is_not_a_caption_table_is_refused_in_one_line(name, make, phrases,
                                                                   tmp_path, capsys):
    images(tmp_path)
    table = make(tmp_path)
    assert_user_error(capsys, ["make-tfrecords", "--table", table, "--output",
                               tmp_path / "out" / "p"], str(table), *phrases)
    assert not list((tmp_path / "out").glob("p-*.tfrecord"))


def test_a_header_only_table_writes_nothing_and_says_so(tmp_path, capsys):
    table = write_table(tmp_path, [])
    code, out, _ = run_cli(capsys, ["make-tfrecords", "--table", table, "--output",
                                    tmp_path / "p"])
    assert code == 1 and "written: 0 pairs in 0 shards" in out
    assert json.loads((tmp_path / "p-summary.json").read_text())["written"] == 0


def test_rows_naming_one_file_become_one_pair_with_every_caption(tmp_path, capsys):
    images(tmp_path)
    table = write_table(tmp_path, [GOOD[0], ("a.jpg", "a second caption"), GOOD[1],
                                   ("a.jpg", "\xff")])
    prefix = tmp_path / "p"
    code, _, _ = run_cli(capsys, ["make-tfrecords", "--table", table, "--output", prefix])
    assert code == 0 and summary_of(prefix)["written"] == 2
