import json

import keras
import pytest
import tensorflow as tf

from keras_clip.data import caption_sources, tfrecord_schema
from keras_clip.data.tfrecord_writer import write_tfrecords
from tests.data.fixtures import write_folder_source, write_tar_source

pytestmark = pytest.mark.backend_independent


def read_records(paths):
    return [tfrecord_schema.parse_example(r) for r in tf.data.TFRecordDataset(paths)]


def test_folder_source_counts_every_skip(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    table, expected = write_folder_source(source)
    summary = write_tfrecords(
        caption_sources.read_caption_table(str(table)), str(tmp_path / "out" / "pairs"),
        shard_size_mb=0.01, num_workers=2, verbose=False,
    )
    assert summary.written == expected["written"]
    assert dict(summary.skipped) == expected["skipped"]
    assert summary.changed["downscaled"] == 1  # the 8000×8000 image
    assert summary.changed["re-encoded from TIFF"] == 1
    assert summary.changed["caption cut to max_caption_chars"] == 1
    assert len(summary.shards) > 1
    records = read_records(summary.shards)
    assert len(records) == expected["written"]
    # Sidecars count each shard's records; the summary is saved beside them.
    assert sum(json.load(open(p + ".json"))["records"] for p in summary.shards) == len(records)
    saved = json.load(open(tmp_path / "out" / "pairs-summary.json"))
    assert saved["written"] == summary.written
    by_key = {r["key"].numpy().decode(): r for r in records}
    captions = [c.decode() for c in by_key["good0.jpg"]["captions"].numpy()]
    assert captions == ["a picture called good0", "a second caption & more"]
    assert len(by_key["wordy.jpg"]["captions"].numpy()[0]) == 1000
    huge = by_key["huge.jpg"]
    assert (int(huge["width"]), int(huge["height"])) == (512, 512)
    for record in records:  # everything written decodes in TensorFlow
        tf.io.decode_image(record["image"], channels=3, expand_animations=False)


def test_tar_source_rejects_escaping_members(tmp_path):
    expected = write_tar_source(tmp_path / "shard.tar")
    summary = write_tfrecords(
        caption_sources.read_webdataset([str(tmp_path / "shard.tar")]),
        str(tmp_path / "out" / "tar"), verbose=False,
    )
    assert summary.written == expected["written"]
    assert dict(summary.skipped) == expected["skipped"]
    assert not (tmp_path / "evil.txt").exists()


def test_stores_token_ids_when_given_a_tokenizer(tmp_path):
    from keras_clip.data.clip_tokenizer import CLIPTokenizer

    write_tar_source(tmp_path / "shard.tar")
    tokenizer = CLIPTokenizer.from_openai(context_length=16)
    summary = write_tfrecords(
        caption_sources.read_webdataset([str(tmp_path / "shard.tar")]),
        str(tmp_path / "out" / "tok"), tokenizer=tokenizer, verbose=False,
    )
    record = read_records(summary.shards)[0]
    expected = keras.ops.convert_to_numpy(tokenizer(["tar caption 0"]))[0]
    assert record["token_ids"].numpy().tolist() == expected.tolist()


def test_table_without_columns_fails_clearly(tmp_path):
    (tmp_path / "bad.csv").write_text("path,text\na.jpg,hello\n")
    with pytest.raises(ValueError, match="header lacks a 'filepath' and a 'caption' column"):
        list(caption_sources.read_caption_table(str(tmp_path / "bad.csv")))


def _source(root, count):
    """A table of `count` small distinct JPEGs."""
    import numpy as np
    from PIL import Image

    from tests.data.fixtures import encode

    rows = ["filepath,caption"]
    rng = np.random.default_rng(0)
    for i in range(count):
        pixels = rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)
        (root / f"{i}.jpg").write_bytes(encode(Image.fromarray(pixels)))
        rows.append(f"{i}.jpg,picture number {i}")
    (root / "t.csv").write_text("\n".join(rows) + "\n")
    return root / "t.csv"


def _outputs(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.slow
def test_a_sigkilled_conversion_reruns_to_the_uninterrupted_shards(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from keras_clip import cli

    table = _source(tmp_path, 1500)
    arguments = ["make-tfrecords", "--table", str(table), "--shard-size-mb", "0.02",
                 "--workers", "1"]
    assert cli.main(arguments + ["--output", str(tmp_path / "whole" / "p")]) == 0
    expected = _outputs(tmp_path / "whole")

    killed = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "keras_clip.cli", *arguments, "--output", str(killed / "p")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(killed.glob("p-*.tfrecord"))) < 5:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    left = sorted(killed.glob("p-*.tfrecord"))
    assert 5 <= len(left) < sum(name.endswith(".tfrecord") for name in expected), \
        "the run finished before it could be killed"
    assert not (killed / "p-summary.json").exists()
    for shard in left:  # every shard under its final name is whole, with an exact sidecar
        assert sum(1 for _ in tf.data.TFRecordDataset(str(shard))) == json.loads(
            (killed / (shard.name + ".json")).read_text())["records"]
        assert shard.read_bytes() == expected[shard.name]

    assert cli.main(arguments + ["--output", str(killed / "p")]) == 0
    rerun = _outputs(killed)  # no .partial file left, the same bytes, the same summary
    summary = rerun.pop("p-summary.json").replace(b"/killed/", b"/whole/")
    assert summary == expected.pop("p-summary.json")
    assert rerun == expected


def test_a_smaller_rerun_removes_the_earlier_runs_extra_shards(tmp_path):
    table = _source(tmp_path, 40)
    pairs = list(caption_sources.read_caption_table(str(table)))
    first = write_tfrecords(pairs, str(tmp_path / "o" / "p"), shard_size_mb=0.005,
                            verbose=False)
    second = write_tfrecords(pairs[:10], str(tmp_path / "o" / "p"), shard_size_mb=0.005,
                             verbose=False)
    assert len(second.shards) < len(first.shards)
    on_disk = sorted(str(p) for p in (tmp_path / "o").glob("p-*.tfrecord"))
    assert on_disk == sorted(second.shards)
    assert sum(json.loads(open(p + ".json").read())["records"] for p in on_disk) == 10
