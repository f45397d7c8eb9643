"""Defaults that fit the run, sizes for any preset, and what a run leaves behind."""

import io
import json

import keras
import pytest

import keras_clip
from keras_clip.data.clip_tokenizer import CLIPTokenizer
from keras_clip.training import TrainConfig, load_config, train
from keras_clip.training.config import MAX_WARMUP_STEPS, RECIPES
from keras_clip.training.progress import StepProgress
from tests.training.shards import write_training_shards


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_training_shards(tmp_path_factory.mktemp("shards"), count=16)


@pytest.mark.parametrize("steps, warmup", [(10, 1), (300, 30), (10**6, MAX_WARMUP_STEPS)])
def test_warm_up_scales_with_the_run_unless_set(steps, warmup):
    config = TrainConfig(train_data="x", steps=steps).resolved(steps)
    assert config.warmup_steps == warmup
    assert TrainConfig(train_data="x", steps=steps, warmup_steps=0).resolved(steps) \
        .warmup_steps == 0


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_a_recipe_fills_only_what_is_unset(recipe):
    config = TrainConfig(train_data="x", steps=10, recipe=recipe).resolved(10)
    assert (config.learning_rate, config.weight_decay) == (
        RECIPES[recipe]["learning_rate"], RECIPES[recipe]["weight_decay"])
    mine = TrainConfig(train_data="x", steps=10, recipe=recipe, learning_rate=0.01)
    assert mine.resolved(10).learning_rate == 0.01
    assert config.preset == "tiny-vit"  # the default preset, recorded by name


def test_ten_steps_alone_is_a_valid_run():
    TrainConfig(train_data="x", steps=10)  # the paper's 2,000-step warm-up refused this
    with pytest.raises(ValueError, match="recipe must be one of paper, small"):
        TrainConfig(train_data="x", steps=10, recipe="tiny")
    with pytest.raises(ValueError, match="preset or architecture, not both"):
        TrainConfig(train_data="x", steps=10, preset="tiny-vit",
                    architecture={"image": [], "text": []})


@pytest.mark.backend_independent
def test_sizes_and_tokenizer_reach_the_model_and_config_json(data, tmp_path):
    tokenizer = CLIPTokenizer.train(["a red square", "a blue circle"] * 8, 600,
                                    context_length=12)
    tokenizer.save_vocabulary(str(tmp_path / "tok"))
    run = tmp_path / "run"
    result = train({"train_data": data, "steps": 2, "batch_size": 8, "image_size": 64,
                    "context_length": 12, "tokenizer": str(tmp_path / "tok"),
                    "output_dir": str(run), "verbose": 0})
    model = result.model
    assert (model.image_size, model.context_length) == (64, 12)
    assert model.text_encoder.get_config()["vocabulary_size"] == tokenizer.vocabulary_size()
    record = json.loads((run / "config.json").read_text())
    assert record["preset"] is None and record["warmup_steps"] is None  # as given
    recorded = record["used"]
    assert recorded["preset"] == "tiny-vit" and recorded["image_size"] == 64
    assert recorded["context_length"] == 12 and recorded["warmup_steps"] == 0
    assert (recorded["learning_rate"], recorded["beta_2"], recorded["epsilon"]) == (
        5e-4, 0.98, 1e-6)
    # The run folder loads like a converted preset: model and tokenizer.
    loaded = keras_clip.load_model(str(run))
    assert loaded.image_size == 64
    again = keras_clip.load_tokenizer(str(run))
    assert again.context_length == 12
    assert keras.ops.convert_to_numpy(again(["a red square"])).tolist() == \
        keras.ops.convert_to_numpy(tokenizer(["a red square"])).tolist()
    # A config.json trains again as written; derived values follow new settings.
    again = load_config(str(run / "config.json"), ["recipe=small", "steps=40"])
    assert again.image_size == 64 and again.resolved(40).learning_rate == 2e-3
    assert again.resolved(40).warmup_steps == 4
    # The same output_dir continues its run, and refuses one that changes it.
    with pytest.raises(ValueError, match=r"holds a run with steps=2, not 3.*preset="):
        train(load_config(str(run / "config.json"), ["steps=3"]))
    done = train(load_config(str(run / "config.json")))
    assert done.steps_this_run == 0 and done.steps == 2
    # Fine-tuning from the run reuses its tokenizer without being told.
    tuned = train({"train_data": data, "steps": 1, "batch_size": 8, "preset": str(run),
                   "output_dir": str(tmp_path / "tuned"), "verbose": 0})
    assert tuned.model.text_encoder.get_config()["vocabulary_size"] == \
        tokenizer.vocabulary_size()
    with pytest.raises(ValueError, match="validation_data holds 16 examples, fewer than"):
        train({"train_data": data, "validation_data": data, "steps": 1, "batch_size": 32,
               "output_dir": str(tmp_path / "v"), "verbose": 0, "tokenizer": None})


def test_a_tokenizer_the_text_tower_cannot_embed_is_refused(data, tmp_path):
    CLIPTokenizer.train(["a red square", "a blue circle"] * 4, 600).save_vocabulary(
        str(tmp_path / "tok"))
    with pytest.raises(ValueError, match="nothing to learn"):
        CLIPTokenizer.train(["a b c"] * 4, 600)
    saved = str(tmp_path / "a.keras")  # a saved model, as a trained one would be
    keras_clip.CLIPModel.from_preset("tiny-vit").save(saved)
    with pytest.raises(ValueError, match=r"has \d+ ids but the model.s text tower embeds 49408"):
        train({"train_data": data, "steps": 1, "batch_size": 8, "preset": saved,
               "tokenizer": str(tmp_path / "tok"), "output_dir": str(tmp_path / "b"),
               "verbose": 0})


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _run_progress(stream, verbose, steps=7, every=3):
    progress = StepProgress(steps, start_step=1, verbose=verbose, every=every, stream=stream)
    progress.on_train_begin()
    for step in range(steps - 1):
        progress.on_train_batch_end(step, {"loss": 2.0 - step / 10})
    progress.on_train_end()
    return stream.getvalue()


def test_progress_counts_steps_of_the_whole_run_and_suits_its_stream():
    logged = _run_progress(io.StringIO(), verbose=1)
    lines = logged.splitlines()
    assert [line.split()[1] for line in lines] == ["3/7", "6/7", "7/7"]  # resumed at 1
    assert "\r" not in logged and "\x08" not in logged
    assert "loss 1.5000" in lines[-1] and "in all" in lines[-1]
    drawn = _run_progress(_Terminal(), verbose=1)
    assert drawn.startswith("\r") and drawn.endswith("\n") and "step 7/7" in drawn
    assert "\r" not in _run_progress(_Terminal(), verbose=2)  # 2: lines even on a terminal
    assert _run_progress(io.StringIO(), verbose=0) == ""


@pytest.mark.backend_independent
def test_a_presets_data_is_a_valid_architecture():
    # Preset data carries the objective and preprocessing the towers were made for.
    from keras_clip.models.clip_presets import PRESETS
    from keras_clip.training import trainer

    config = TrainConfig(train_data="x", steps=1, preset=None,
                         architecture=PRESETS["tiny-siglip"])
    model, _ = trainer._new_model(config)
    assert model.objective.name == "sigmoid"
    assert model.preprocessing.mean == (0.5, 0.5, 0.5)
    with pytest.raises(ValueError, match=r"may have 'objective' and 'preprocessing'.*'typo'"):
        TrainConfig(train_data="x", steps=1, preset=None,
                    architecture={**PRESETS["tiny-siglip"], "typo": 1})
