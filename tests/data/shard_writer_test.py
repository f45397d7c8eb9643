import json

import pytest
import tensorflow as tf

from keras_clip.data import tfrecord_schema
from keras_clip.data.shard_writer import ShardWriter, write_shards

pytestmark = pytest.mark.backend_independent


def records(count):
    return [tfrecord_schema.serialize_example(b"x", [f"c {i}"], key=str(i)) for i in range(count)]


def test_shards_split_by_count_with_sidecars(tmp_path):
    pattern = write_shards(records(5), str(tmp_path / "train"), count=5, num_shards=2)
    shards = sorted(tf.io.gfile.glob(pattern))
    assert [p.rsplit("/", 1)[1] for p in shards] == ["train-00000.tfrecord",
                                                    "train-00001.tfrecord"]
    counts = [json.loads(open(p + tfrecord_schema.SIDECAR_SUFFIX).read())["records"]
              for p in shards]
    assert counts == [3, 2]
    assert sum(1 for p in shards for _ in tf.data.TFRecordDataset(p)) == 5


def test_an_error_while_writing_publishes_no_shard(tmp_path):
    with pytest.raises(RuntimeError), ShardWriter(str(tmp_path / "s"), max_records=10) as writer:
        writer.write(records(1)[0])
        raise RuntimeError("the source failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_an_earlier_runs_numbered_shards_are_removed_and_nothing_else(tmp_path):
    for name in ("train-00000-of-00002.tfrecord", "train-00003.tfrecord", "train-extra.tfrecord"):
        (tmp_path / name).write_bytes(b"")
        (tmp_path / (name + tfrecord_schema.SIDECAR_SUFFIX)).write_text('{"records": 0}')
    write_shards(records(2), str(tmp_path / "train"), count=2, num_shards=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "train-00000.tfrecord", "train-00000.tfrecord.json",
        "train-extra.tfrecord", "train-extra.tfrecord.json"]
