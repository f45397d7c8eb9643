"""Several input workers: each reads its own files, and together they read each record once.

Bytes read are measured with the kernel's count for this process
(`/proc/self/io`, `rchar`: bytes returned by read calls), compared with the
shards' total size.
"""

import os

import numpy as np
import pytest

from keras_clip.data.dataset import list_shards, make_dataset
from keras_clip.data.synthetic_pairs import write_synthetic_tfrecords

pytestmark = [
    pytest.mark.backend_independent,
    pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="needs Linux's /proc"),
]
COUNT, SHARDS, BATCH = 48, 4, 4


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return write_synthetic_tfrecords(str(tmp_path_factory.mktemp("shards")), count=COUNT,
                                     num_shards=SHARDS, image_size=64)


def stream(shards, worker=None, sharding="files", **options):
    options = {"image_size": 32, "batch_size": BATCH, "training": True, "seed": 1,
               "deterministic": True, "drop_remainder": False, "trim_token_ids": False,
               **options}
    return make_dataset(shards, input_worker=worker, input_sharding=sharding, **options)


def rows(dataset, batches=None):
    """The token-id rows delivered (random ids: one per record), as tuples."""
    taken = dataset if batches is None else dataset.take(batches)
    return [tuple(row) for batch in taken for row in batch["token_ids"].numpy()]


def bytes_read(function):
    def rchar():
        with open("/proc/self/io") as file:
            return next(int(line.split()[1]) for line in file if line.startswith("rchar"))

    before = rchar()
    function()
    return rchar() - before


def test_file_sharded_workers_read_their_share_and_deliver_every_record_once(shards):
    everything = rows(stream(shards))
    assert len(set(everything)) == COUNT  # the ids tell the records apart
    total = sum(os.path.getsize(path) for path in list_shards(shards))
    shares, reads = [], {}
    for sharding in ("files", "examples"):
        for index in range(2):
            dataset = stream(shards, (2, index), sharding)
            delivered = []
            reads[sharding, index] = bytes_read(lambda: delivered.extend(rows(dataset)))
            if sharding == "files":
                shares.append(delivered)
    assert sorted(shares[0] + shares[1]) == sorted(everything)
    assert len(shares[0]) == len(shares[1]) == COUNT // 2
    for index in range(2):  # measured: 0.50 and 1.00 of the bytes here
        assert 0.45 <= reads["files", index] / total <= 0.6
        assert 0.95 <= reads["examples", index] / total <= 1.1


def test_example_sharded_workers_together_deliver_the_one_device_batches(shards):
    one_device = stream(shards, batch_size=2 * BATCH, drop_remainder=True)
    workers = [stream(shards, (2, index), "examples", drop_remainder=True) for index in range(2)]
    batches = 0
    for whole, first, second in zip(one_device, *workers):
        for key in ("images", "token_ids"):  # worker i keeps positions i, i + 2, ...
            np.testing.assert_array_equal(first[key], whole[key].numpy()[0::2])
            np.testing.assert_array_equal(second[key], whole[key].numpy()[1::2])
        batches += 1
    assert batches == COUNT // (2 * BATCH)


def test_a_file_sharded_worker_resumes_exactly(shards):
    def worker_stream(skip_examples):
        return stream(shards, (2, 1), repeat=True, skip_examples=skip_examples,
                      drop_remainder=True)

    whole = [batch for _, batch in zip(range(9), worker_stream(0))]
    # 4 steps of a global batch of 2 workers x BATCH: this worker's 4 batches.
    resumed = [batch for _, batch in zip(range(5), worker_stream(4 * 2 * BATCH))]
    for expected, actual in zip(whole[4:], resumed):
        np.testing.assert_array_equal(actual["images"], expected["images"])
        np.testing.assert_array_equal(actual["token_ids"], expected["token_ids"])


def test_fewer_files_than_workers_is_a_clear_error(shards):
    with pytest.raises(ValueError, match=f"{SHARDS} TFRecord file.s. for 5 input workers"):
        stream(shards, (5, 0))
    assert len(rows(stream(shards, (5, 0), "examples"))) == 10  # positions 0, 5, ... 45
    with pytest.raises(ValueError, match="input_sharding must be"):
        stream(shards, (2, 0), "records")


def test_a_worker_index_outside_the_workers_is_refused(shards):
    for worker in ((2, 2), (2, -1), (0, 0)):
        with pytest.raises(ValueError, match="the index must be"):
            stream(shards, worker)
