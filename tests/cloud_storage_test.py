"""Every path may be a URL: the whole cycle on TensorFlow's `ram://` filesystem.

`ram://` is an in-memory filesystem that only `tf.io.gfile` reaches, a stand-in
for `gs://` that needs no network. The cycle (a caption table and its
images → make-tfrecords → train, interrupted → resume → export → evaluate)
runs in this process from a scratch working directory: a path that went
through Python's `os` instead of gfile would appear there as a local `ram:`
folder, and the test would see it. Every path goes through keras_clip's
`files` module or Keras' saving, which reach URLs through the same gfile
whichever backend computes (an export builds its SavedModel in a local
scratch folder on every backend), so the cycle runs on the TensorFlow
pass only; each backend's training, resuming and exporting have their own
tests.
"""

import csv
import io
import json
import os
import uuid

import keras
import numpy as np
import pytest

from keras_clip import cli, files
from keras_clip.training.trainer import train
from tests.data.fixtures import encode, photo
from tests.helpers import StopAt

COLOURS = {"red": (220, 40, 40), "blue": (40, 60, 220)}


def interrupt():
    raise KeyboardInterrupt  # as Ctrl-C, or a preemption, would stop the run


def write_caption_table(root):
    """16 coloured pictures and a table naming them, written under URL `root`."""
    rows = []
    for index in range(16):
        name = list(COLOURS)[index % 2]
        noise = np.asarray(photo(index, (40, 40)), np.float32) * 0.2
        image = np.clip(noise + np.array(COLOURS[name]) * 0.8, 0, 255).astype(np.uint8)
        with files.open(files.join(root, "images", f"{index}.png"), "wb") as file:
            file.write(encode(keras.utils.array_to_img(image), "PNG"))
        rows.append((f"images/{index}.png", f"a {name} square"))
    table = io.StringIO()
    csv.writer(table).writerows([("filepath", "caption"), *rows])
    with files.open(files.join(root, "captions.csv"), "w") as file:
        file.write(table.getvalue())


@pytest.mark.slow
@pytest.mark.backend_independent
def test_whole_cycle_on_an_in_memory_filesystem(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = f"ram://cycle-{uuid.uuid4().hex}"
    write_caption_table(root)
    with files.open(files.join(root, "classes.txt"), "w") as file:
        file.write("red\nblue\n")

    assert cli.main(["make-tfrecords", "--table", f"{root}/captions.csv",
                     "--output", f"{root}/shards/train"]) == 0
    shards = f"{root}/shards/train-*.tfrecord"
    assert files.glob(shards)

    run = f"{root}/run"
    config = {"preset": "tiny-vit", "train_data": shards, "batch_size": 8, "steps": 4,
              "checkpoint_every": 2, "output_dir": run, "verbose": 0}
    with pytest.raises(KeyboardInterrupt):
        train(config, callbacks=[StopAt(3, interrupt)])
    assert files.listdir(f"{run}/checkpoints") == ["latest.json", "step-000000002.keras"]
    resume = [word for key, value in config.items() for word in ("--set", f"{key}={value}")]
    assert cli.main(["train", *resume]) == 0
    with files.open(f"{run}/checkpoints/latest.json") as file:
        assert json.load(file)["step"] == 4
    assert files.isfile(f"{run}/model.keras") and files.isfile(f"{run}/vocab.json")
    assert files.listdir(f"{run}/logs")  # TensorBoard's

    assert cli.main(["export", "--model", run, "--output", f"{root}/saved/clip",
                     "--classes", f"{root}/classes.txt"]) == 0
    assert files.isfile(f"{root}/saved/clip/1/saved_model.pb")
    assert files.isdir(f"{root}/saved/clip/1/variables")

    assert cli.main(["evaluate", "--model", run, "--captions", shards,
                     "--json", f"{root}/report.json"]) == 0
    with files.open(f"{root}/report.json") as file:
        assert "retrieval" in json.load(file)
    assert os.listdir(tmp_path) == []  # nothing went through the local filesystem
    files.rmtree(root)

