import json

import keras
import pytest
import tensorflow as tf

from keras_clip.data import caption_sources, tfrecord_schema
from keras_clip.data.tfrecord_writer import write_tfrecords
from tests.data.fixtures import write_folder_source, write_tar_source


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
