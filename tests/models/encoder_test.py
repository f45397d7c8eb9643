"""The tower contract, checked on every registered tower, on every backend.

Each tower in `clip_presets.TOWERS` must appear in a tiny preset; inside a
`CLIPModel` built from it, the tower must declare what the package reads
(models/encoder.py), train with its last block unlocked and remat on,
and survive a `.keras` round trip.
"""

import json

import keras
import numpy as np
import pytest

from keras_clip.data.synthetic_pairs import synthetic_pairs
from keras_clip.models import clip_presets
from keras_clip.models.clip_model import CLIPModel
from keras_clip.models.encoder import ImageEncoder, TextEncoder
from keras_clip.training.trainer import rematerialize
from tests.helpers import to_numpy

TINY = [name for name in clip_presets.PRESETS if name.startswith("tiny-")]


def tiny_presets_of(tower_name):
    return [name for name in TINY if tower_name in tower_classes(name)]


def tower_classes(preset):
    return {clip_presets.PRESETS[preset][part][0] for part in clip_presets.TOWER_PARTS}


def test_every_registered_tower_has_a_tiny_preset():
    assert {name: tiny_presets_of(name) for name in clip_presets.TOWERS if
            not tiny_presets_of(name)} == {}


def towers_under_test():
    # One preset per tower: each tiny preset adds at least one tower.
    chosen, covered = [], set()
    for name in TINY:
        classes = tower_classes(name)
        if classes - covered:
            chosen.append(name)
            covered |= classes
    return chosen


def check_declarations(tower):
    assert isinstance(tower.output_dim, int) and tower.output_dim > 0
    assert {"beta_2", "epsilon"} <= set(tower.optimizer_defaults)
    heads = tower.head_variables
    tower_variables = {id(v) for v in tower.weights}
    assert heads and all(id(v) in tower_variables for v in heads)
    layers = tower.layers
    positions = [layers.index(block) for block in tower.residual_blocks]
    assert positions == sorted(positions)  # forward order, all the tower's own
    assert all(block in tower.residual_blocks for block in tower.remat_blocks)
    if isinstance(tower, ImageEncoder):
        assert tower.input_shape[1:] == (tower.image_size, tower.image_size, 3)
        assert all(id(v) in tower_variables for v in tower.grid_positions)
        tower.patch_dropout = tower.patch_dropout  # every image tower takes its own rate
    else:
        assert isinstance(tower, TextEncoder)
        assert tower.context_length > 0 and tower.vocabulary_size > 0
        assert isinstance(tower.accepts_trimmed_token_ids, bool)


def unlocked_and_locked(tower):
    """Variables expected to train and to stay, with the last block unlocked."""
    blocks = tower.residual_blocks
    tower.lock(unlocked_blocks=1 if blocks else 0)
    trainable = {id(v) for v in tower.trainable_variables}
    if blocks:
        assert {id(v) for v in blocks[-1].trainable_variables} <= trainable
        assert not ({id(v) for v in blocks[0].weights} & trainable) or len(blocks) == 1
    return trainable


@pytest.mark.parametrize("preset", towers_under_test())
def test_tower_contract_inside_clip_model(preset, tmp_path):
    model = CLIPModel.from_preset(preset)
    image, text = model.image_encoder, model.text_encoder
    for tower in (image, text):
        check_declarations(tower)
    assert len(model.head_variables) == (
        len(image.head_variables) + len(text.head_variables) + len(model.objective_weights))
    training = unlocked_and_locked(image) | unlocked_and_locked(text)  # variable ids
    rematerialize(model)
    for tower in (image, text):
        assert all(block._remat_mode.mode == "full" for block in tower.remat_blocks)
    before = {id(v): to_numpy(v) for v in model.trainable_variables}
    frozen = [(v, to_numpy(v)) for tower in (image, text) for v in tower.weights
              if id(v) not in training and "moving" not in v.path]
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    pairs = synthetic_pairs(6, image_size=image.image_size,
                            context_length=text.context_length)
    history = model.fit(pairs, batch_size=2, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"]).all() and len(history["loss"]) == 1
    moved = [v.path for v in model.trainable_variables
             if not np.allclose(to_numpy(v), before[id(v)])]
    assert moved  # the unlocked blocks and heads trained
    for variable, value in frozen:
        np.testing.assert_array_equal(to_numpy(variable), value, err_msg=variable.path)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    inputs = {key: pairs[key][:2] for key in ("images", "token_ids")}
    for key, value in model.predict(inputs, verbose=0).items():
        np.testing.assert_allclose(loaded.predict(inputs, verbose=0)[key], value, atol=1e-5)
    assert loaded.get_config() == model.get_config()


def test_a_new_tower_trains_from_the_command_line(tmp_path):
    from keras_clip import cli, load_model
    from keras_clip.data.synthetic_pairs import write_synthetic_tfrecords
    from keras_clip.models.convnext_encoder import ConvNeXtEncoder

    pattern = write_synthetic_tfrecords(str(tmp_path / "data"), count=8, image_size=32)
    sets = {"train_data": pattern, "preset": "tiny-convnext", "tokenizer": "null",
            "steps": 2, "warmup_steps": 1, "batch_size": 4, "verbose": 0,
            "output_dir": str(tmp_path / "run")}
    argv = ["train"] + [part for key, value in sets.items() for part in
                        ("--set", f"{key}={value}")]
    assert cli.main(argv) == 0
    model = load_model(str(tmp_path / "run"))
    assert isinstance(model.image_encoder, ConvNeXtEncoder)
    assert int(to_numpy(model.optimizer.iterations)) == 2
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["used"]["beta_2"] == ConvNeXtEncoder.optimizer_defaults["beta_2"]
