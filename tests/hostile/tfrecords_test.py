"""Hostile TFRecord shards through `make_dataset` and `keras-clip train`.

Damage inside a shard loses only the damaged records (the rest are delivered
and the loss counted); data that cannot train at all raises at once, naming
the files, instead of delivering nothing (with `repeat=True`, forever).
"""

import gzip
import json
import threading

import numpy as np
import pytest
import tensorflow as tf

from keras_clip.data import record_reader, tfrecord_schema
from keras_clip.data.dataset import expected_records, list_shards, make_dataset
from tests.hostile.corpus import assert_user_error, encode, noise

IMAGE = encode(noise(24, 20, seed=5))
IDS = np.array([[49406, 320, 49407, 0]])


def record(i, image=IMAGE, captions=None, token_ids=IDS):
    return tfrecord_schema.serialize_example(
        image, captions or [f"caption {i}"], key=f"k{i}", token_ids=token_ids)


def write(path, records, sidecar=True):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for data in records:
            writer.write(data)
    if sidecar:
        (path.parent / (path.name + ".json")).write_text(json.dumps({"records": len(records)}))
    return path


def offsets(path):
    """Byte offsets of each record in a TFRecord file, and the file's end."""
    starts, position = [], 0
    for data in tf.data.TFRecordDataset(str(path)):
        starts.append(position)
        position += 16 + len(data.numpy())
    return starts + [position]


def flip(path, position):
    data = bytearray(path.read_bytes())
    data[position] ^= 0xFF
    path.write_bytes(bytes(data))


def keys(dataset_or_pattern, **options):
    """The record keys an evaluation pass delivers (a dataset of keys is rebuilt)."""
    dataset = make_dataset(dataset_or_pattern, image_size=8, batch_size=1, training=False,
                           **options)
    delivered = sum(int(b["images"].shape[0]) for b in dataset)
    return delivered, dataset.stats


def shard_of(tmp_path, count=10, name="s.tfrecord"):
    return write(tmp_path / name, [record(i) for i in range(count)])


DAMAGE = [  # (id, damage to a 10-record shard, records delivered, damaged regions)
    ("crc-in-data-mid-shard", lambda p, o: flip(p, o[3] + 16 + 40), 9, 1),
    ("crc-of-data-itself", lambda p, o: flip(p, o[4] - 2), 9, 1),
    ("length-field-flipped", lambda p, o: flip(p, o[5] + 1), 9, 1),
    ("length-crc-flipped", lambda p, o: flip(p, o[5] + 9), 9, 1),
    ("two-damaged-records", lambda p, o: (flip(p, o[2] + 20), flip(p, o[7] + 20)), 8, 2),
    ("first-record-damaged", lambda p, o: flip(p, o[0] + 30), 9, 1),
    ("last-record-cut", lambda p, o: p.write_bytes(p.read_bytes()[: o[9] + 30]), 9, 1),
    ("cut-inside-a-header", lambda p, o: p.write_bytes(p.read_bytes()[: o[6] + 5]), 6, 1),
    ("garbage-between-records", lambda p, o: _insert(p, o[4], b"\x13" * 300), 10, 1),
    ("zeros-overwrite-a-record", lambda p, o: _overwrite(p, o[3], b"\x00" * 40), 9, 1),
    ("trailing-garbage", lambda p, o: p.write_bytes(p.read_bytes() + b"junk" * 100), 10, 1),
]


def _insert(path, position, data):
    old = path.read_bytes()
    path.write_bytes(old[:position] + data + old[position:])


def _overwrite(path, position, data):
    old = bytearray(path.read_bytes())
    old[position:position + len(data)] = data
    path.write_bytes(bytes(old))


@pytest.mark.parametrize("name,damage,delivered,regions", DAMAGE, ids=[c[0] for c in DAMAGE])
def test_damage_inside_a_shard_loses_only_the_damaged_records(name, damage, delivered,
                                                              regions, tmp_path):
    path = shard_of(tmp_path)
    intact = [r.numpy() for r in tf.data.TFRecordDataset(str(path))]
    damage(path, offsets(path))
    counter = record_reader.DamageCounter()
    read = [r.numpy() for r in record_reader.read_shard(
        tf.constant(str(path)), record_reader.offsets_table(), counter)]
    # Every record delivered is an intact one, in order; only damaged ones are lost.
    assert len(read) == delivered and all(r in intact for r in read)
    assert [intact.index(r) for r in read] == sorted(intact.index(r) for r in read)
    assert counter.regions == regions and counter.files == {str(path)}


def test_make_dataset_delivers_the_records_around_damage_and_counts_the_loss(tmp_path):
    path = shard_of(tmp_path)
    flip(path, offsets(path)[3] + 16 + 40)
    write(tmp_path / "t.tfrecord", [record(i) for i in range(3)])
    count, stats = keys(str(tmp_path / "*.tfrecord"))
    assert count == 12 and stats.damage.regions == 1
    assert stats.as_dict()["records_unreadable"] == 1
    assert "1 damaged region(s) skipped in" in stats.summary()


def test_a_damaged_shard_in_training_repeats_with_its_good_records(tmp_path):
    path = shard_of(tmp_path, 6)
    flip(path, offsets(path)[2] + 30)
    dataset = make_dataset(str(path), image_size=8, batch_size=5, training=True, seed=1,
                           repeat=True)
    batches = list(dataset.take(4))  # 20 examples: four passes over the 5 good records
    assert [int(b["images"].shape[0]) for b in batches] == [5, 5, 5, 5]


REFUSED = [  # (id, shard maker, make_dataset options, phrases of the ValueError)
    ("gzip-compressed", lambda p: _gzip(write(p, [record(i) for i in range(4)])), {},
     ["No readable TFRecord", "GZIP"]),
    ("random-bytes", lambda p: p.write_bytes(np.random.default_rng(0).bytes(4000)), {},
     ["No readable TFRecord"]),
    ("empty-file", lambda p: p.write_bytes(b""), {}, ["No readable TFRecord"]),
    ("a-text-file", lambda p: p.write_text("filepath,caption\na.jpg,x\n"), {},
     ["No readable TFRecord"]),
    ("every-image-undecodable", lambda p: write(
        p, [record(i, image=b"not an image") for i in range(5)]), {},
     ["No example could be read", "5 records read, 0 examples delivered, 5 skipped",
      "Unknown image file format"]),
    ("not-an-example", lambda p: write(p, [b"\x08\x96\x01 hello"] * 3), {},
     ["is not a keras_clip example"]),
    ("example-without-image", lambda p: write(p, [tf.train.Example().SerializeToString()]),
     {}, ["is not a keras_clip example", "image"]),
    ("first-record-without-caption", lambda p: write(
        p, [tfrecord_schema.serialize_example(IMAGE, [])]), {}, ["has no caption"]),
    ("no-ids-and-no-tokenizer", lambda p: write(p, [record(i, token_ids=None)
                                                    for i in range(3)]), {},
     ["records hold no token_ids: pass a tokenizer"]),
    ("ids-not-one-row-per-caption", lambda p: write(
        p, [record(0, captions=["a", "b"], token_ids=np.arange(5))]), {},
     ["5 token ids for 2 captions"]),
]


def _gzip(path):
    path.write_bytes(gzip.compress(path.read_bytes()))
    return path


@pytest.mark.parametrize("name,make,options,phrases", REFUSED, ids=[c[0] for c in REFUSED])
@pytest.mark.parametrize("repeat", [False, True])
def test_data_that_cannot_train_raises_at_once(name, make, options, phrases, repeat,
                                               tmp_path):
    path = tmp_path / "bad.tfrecord"
    make(path)
    result = {}

    def build():
        try:
            make_dataset(str(path), image_size=8, batch_size=2, training=True, seed=0,
                         repeat=repeat, **options)
        except ValueError as error:
            result["error"] = str(error)

    worker = threading.Thread(target=build, daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "make_dataset hung"
    assert "error" in result
    for phrase in [str(path), *phrases]:
        assert phrase in result["error"], (phrase, result["error"])


def test_a_record_without_caption_later_in_a_shard_is_a_counted_skip(tmp_path):
    write(tmp_path / "s.tfrecord", [record(0), tfrecord_schema.serialize_example(IMAGE, []),
                                    record(2)])
    count, stats = keys(str(tmp_path / "s.tfrecord"))
    assert count == 2 and stats.as_dict()["examples_skipped"] == 1


@pytest.mark.parametrize("width", [2, 4, 9, 16])
def test_stored_ids_of_another_width_are_fitted_to_the_context(width, tmp_path):
    rows = [np.array([[49406] + [320 + i] * (width - 2) + [49407]]) for i in range(3)]
    write(tmp_path / "s.tfrecord", [record(i, token_ids=rows[i]) for i in range(3)])
    write(tmp_path / "t.tfrecord", [record(9, token_ids=IDS)])  # width 4
    dataset = make_dataset(str(tmp_path / "*.tfrecord"), image_size=8, batch_size=4,
                           training=False, context_length=6, trim_token_ids=False)
    ids = next(iter(dataset))["token_ids"].numpy()
    assert ids.shape == (4, 6)
    for row in ids:
        real = row[row != 0]
        assert real[0] == 49406 and real[-1] == 49407  # framing kept when cut


SIDECARS = [  # (id, sidecar text): each is ignored with a warning, never fatal
    ("no-records-key", '{"count": 3}'),
    ("not-json", "three"),
    ("negative", '{"records": -1}'),
    ("a-string", '{"records": "3"}'),
    ("a-list", "[3]"),
]


@pytest.mark.parametrize("name,text", SIDECARS, ids=[c[0] for c in SIDECARS])
def test_a_malformed_sidecar_is_ignored_with_a_warning(name, text, tmp_path):
    path = write(tmp_path / "s.tfrecord", [record(i) for i in range(3)], sidecar=False)
    (tmp_path / "s.tfrecord.json").write_text(text)
    with pytest.warns(UserWarning, match="not a keras_clip sidecar"):
        assert expected_records([str(path)]) is None
    with pytest.warns(UserWarning):
        count, stats = keys(str(path))
    assert count == 3 and stats.as_dict()["records_unreadable"] is None


GLOBS = [  # (id, setup, pattern, phrase)
    ("nothing", lambda p: None, "*.tfrecord", "No TFRecord files match"),
    ("only-a-directory", lambda p: (p / "d.tfrecord").mkdir(), "*.tfrecord", "no file"),
    ("only-sidecars", lambda p: (p / "s.tfrecord.json").write_text("{}"), "*.json",
     "No TFRecord files match"),
]


@pytest.mark.parametrize("name,setup,pattern,phrase", GLOBS, ids=[c[0] for c in GLOBS])
def test_a_pattern_matching_no_shard_is_a_clear_error(name, setup, pattern, phrase,
                                                      tmp_path):
    setup(tmp_path)
    with pytest.raises(FileNotFoundError, match=phrase):
        list_shards(str(tmp_path / pattern))


@pytest.mark.parametrize("maker", ["gzip", "undecodable", "no-ids"])
def test_keras_clip_train_on_unusable_shards_stops_in_one_line(maker, tmp_path, capsys):
    path = tmp_path / "bad.tfrecord"
    {"gzip": REFUSED[0][1], "undecodable": REFUSED[4][1], "no-ids": REFUSED[8][1]}[maker](path)
    assert_user_error(capsys, ["train", "--set", f"train_data={path}", "--set", "steps=2",
                               "--set", "warmup_steps=0", "--set", "batch_size=2",
                               "--set", "tokenizer=null", "--set",
                               f"output_dir={tmp_path / 'run'}"], str(path))
