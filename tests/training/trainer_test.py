import json
import os
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_clip.training import TrainConfig, train
from keras_clip.training.checkpointer import latest_checkpoint
from tests.helpers import StopAt, to_numpy
from tests.training.shards import write_training_shards

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_training_shards(tmp_path_factory.mktemp("shards"), count=32)


def tiny_config(data, output_dir, **overrides):
    config = {"preset": "tiny-vit", "train_data": data, "tokenizer": None,
              "batch_size": 8, "steps": 6, "warmup_steps": 2, "learning_rate": 1e-3,
              "checkpoint_every": 2, "output_dir": str(output_dir), "verbose": 0,
              "seed": 5}
    config.update(overrides)
    return config


def weights_of(path):
    return [to_numpy(w) for w in keras.saving.load_model(path).weights]


def max_difference(a, b):
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


def start_subprocess(config, tmp_path, kill_at=None):
    """`train(config)` in a new process (killed after step `kill_at`, if given)."""
    path = tmp_path / f"config-{len(os.listdir(tmp_path))}.json"
    path.write_text(json.dumps(config))
    command = [sys.executable, "-m", "tests.training.run_train", str(path)]
    if kill_at is not None:
        command.append(str(kill_at))
    env = dict(os.environ, KERAS_BACKEND=keras.backend.backend(),
               TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finished(process):
    """`(returncode, stderr)` of a process from `start_subprocess`."""
    _, stderr = process.communicate(timeout=600)
    return process.returncode, stderr


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_to_the_uninterrupted_weights(data, tmp_path):
    # The killed run accumulates (2 micro-batches of 4); the whole run and the
    # resumed one do not, as a batch's split changes no update. On
    # TensorFlow all three accumulate: there Adam moves the embedding rows
    # of tokens repeated in a batch differently (by ~2e-5 at lr 1e-3) when
    # the whole batch's sparse gradient comes in than when the micro-batches'
    # dense sum does, although the gradients agree to 1e-6 (README, "Large
    # batches"). Adam's epsilon is 1 (as in distribution_test): with 1e-6, a
    # gradient that is zero up to rounding moves a weight by ±lr.
    # The uninterrupted run trains here while the killed one runs.
    steps = 2 if keras.backend.backend() == "tensorflow" else 1
    interrupted = tiny_config(data, tmp_path / "interrupted", epsilon=1.0,
                              accumulation_steps=steps)
    killed = start_subprocess(dict(interrupted, accumulation_steps=2), tmp_path, kill_at=3)
    train(tiny_config(data, tmp_path / "whole", epsilon=1.0, accumulation_steps=steps))
    returncode, stderr = finished(killed)
    assert returncode == -signal.SIGKILL, stderr[-3000:]
    checkpoints = str(tmp_path / "interrupted" / "checkpoints")
    assert latest_checkpoint(checkpoints)[0] == 2  # step 3 was lost with the process
    assert not os.path.exists(tmp_path / "interrupted" / "model.keras")
    returncode, stderr = finished(start_subprocess(interrupted, tmp_path))
    assert returncode == 0, stderr[-3000:]
    assert latest_checkpoint(checkpoints)[0] == 6

    expected = weights_of(str(tmp_path / "whole" / "model.keras"))
    actual = weights_of(str(tmp_path / "interrupted" / "model.keras"))
    initial = keras.saving.load_model(str(tmp_path / "whole" / "model.keras"))
    assert len(expected) == len(actual) == len(initial.weights)
    assert max_difference(actual, expected) <= 1e-6


def test_train_writes_checkpoints_logs_and_a_model(data, tmp_path):
    result = train(tiny_config(data, tmp_path, steps=5, checkpoint_every=2,
                               keep_checkpoints=2))
    assert result.steps == 5
    assert int(result.model.optimizer.iterations) == 5
    checkpoints = sorted(os.listdir(tmp_path / "checkpoints"))
    # Every 2 steps, and the end; only the newest 2 are kept.
    assert checkpoints == ["latest.json", "step-000000004.keras", "step-000000005.keras"]
    assert os.listdir(tmp_path / "logs")
    for key in ("loss", "learning_rate", "logit_scale", "image_to_text_accuracy"):
        assert np.isfinite(result.history[key]).all(), key
    assert result.history["batch_size"] == [8] * 3  # one optimizer step's examples
    saved = json.loads((tmp_path / "config.json").read_text())
    assert TrainConfig.from_dict(saved).steps == 5
    # A finished run restarted does nothing more.
    again = train(tiny_config(data, tmp_path, steps=5, checkpoint_every=2))
    assert again.history == {}
    assert int(again.model.optimizer.iterations) == 5


@pytest.mark.parametrize("change, message", [
    ({"learning_rte": 1e-3}, "unknown key(s) 'learning_rte'"),
    ({"train_data": "/nowhere/*.tfrecord"}, "train_data='/nowhere/*.tfrecord' matches no file"),
    ({"steps": None}, "set exactly one of steps and epochs"),
    ({"precision": "float8"}, "precision must be one of"),
    ({"batch_size": "64"}, "batch_size must be int"),
    ({"warmup_steps": 10}, "warmup_steps (10) must be below steps (6)"),
    ({"accumulation_steps": 3}, "batch_size (8) must be a multiple of accumulation_steps (3)"),
    ({"accumulation_steps": 0}, "accumulation_steps must be at least 1"),
    ({"patch_dropout": 1}, "patch_dropout must be in [0, 1), got 1"),
    ({"preset": "tiny-resnet", "patch_dropout": 0.5},
     "patch_dropout applies to towers made of patches (ViTs)"),
])
def test_bad_configs_fail_before_training_with_one_clear_message(data, tmp_path, change,
                                                                  message):
    with pytest.raises((ValueError, FileNotFoundError)) as error:
        train(tiny_config(data, tmp_path, **change))
    assert message in str(error.value)
    assert not os.path.exists(tmp_path / "checkpoints")


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="mirrors over the two logical CPUs conftest makes on TF")
def test_a_batch_that_does_not_split_over_replicas_fails_before_training(data, tmp_path):
    with pytest.raises(ValueError, match="batch_size=9 does not split evenly over 2"):
        train(tiny_config(data, tmp_path, batch_size=9, distribution="mirrored"))
    # 8 = 2 replicas × 4 micro-batches of 1, but not 2 × 8.
    with pytest.raises(ValueError, match="patch_dropout is not supported under the mirrored"):
        train(tiny_config(data, tmp_path, distribution="mirrored", patch_dropout=0.5))
    with pytest.raises(ValueError, match=r"batch_size=8 does not split evenly into 2 "
                       r"replica\(s\) \(mirrored\) × accumulation_steps=8 equal micro-batches; "
                       "use a multiple of 16"):
        train(tiny_config(data, tmp_path, accumulation_steps=8, distribution="mirrored"))
    assert not os.path.exists(tmp_path / "checkpoints")


@pytest.mark.backend_independent
def test_epochs_count_steps_from_the_shard_sidecars(data, tmp_path):
    result = train(tiny_config(data, tmp_path, steps=None, epochs=2, warmup_steps=1))
    assert result.steps == 2 * 32 // 8


@pytest.mark.backend_independent
def test_cli_train_parses_overrides_and_reports_bad_keys(data, tmp_path, capsys):
    from keras_clip import cli

    config = tmp_path / "cfg.json"
    config.write_text(json.dumps(tiny_config(data, tmp_path / "run", steps=3)))
    assert cli.main(["train", "--config", str(config), "--set", "steps=2",
                     "--set", "warmup_steps=1"]) == 0
    assert "Trained 2 steps" in capsys.readouterr().out
    assert os.path.exists(tmp_path / "run" / "model.keras")
    assert cli.main(["train", "--config", str(config), "--set", "stepz=2"]) == 2
    assert "unknown key(s) 'stepz'" in capsys.readouterr().err


def float16_runs_here():
    if keras.backend.backend() != "jax":
        return True
    import jax

    return jax.default_backend() != "cpu"


def test_float16_training_scales_the_loss(data, tmp_path):
    if not float16_runs_here():
        with pytest.raises(ValueError, match="'mixed_float16' needs a GPU on the JAX"):
            train(tiny_config(data, tmp_path, steps=2, warmup_steps=1,
                              precision="mixed_float16"))
        return
    result = train(tiny_config(data, tmp_path, steps=2, warmup_steps=1,
                               precision="mixed_float16"))
    model = result.model
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert model.image_encoder.blocks[0].compute_dtype == "float16"
    assert {v.dtype for v in model.trainable_variables} == {"float32"}
    assert np.isfinite(result.history["loss"]).all()


def test_a_file_sharded_run_resumes_only_with_its_number_of_input_workers(tmp_path):
    from keras_clip.training import trainer
    from keras_clip.training.config import USED, TrainConfig

    config = TrainConfig(train_data="x-*.tfrecord", steps=4, output_dir=str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps(
        {USED: {**config.to_dict(), trainer.INPUT_WORKERS: 2}}))
    trainer._check_continues(config, 2)  # the same two hosts: continues
    with pytest.raises(ValueError, match="data 2 input worker.s. read.*1 would read another"):
        trainer._check_continues(config, 1)
    examples = TrainConfig(**{**config.to_dict(), "input_sharding": "examples"})
    (tmp_path / "config.json").write_text(json.dumps(
        {USED: {**examples.to_dict(), trainer.INPUT_WORKERS: 2}}))
    trainer._check_continues(examples, 1)  # one stream, whoever reads it


def test_the_sigmoid_objective_trains_is_recorded_and_can_be_switched(data, tmp_path):
    from keras_clip import load_model
    from keras_clip.losses import ContrastiveObjective, SigmoidObjective

    config = tiny_config(data, tmp_path / "sigmoid", steps=2, warmup_steps=1,
                         objective="sigmoid")
    result = train(config)
    assert isinstance(result.model.objective, SigmoidObjective)
    assert np.isfinite(result.history["logit_bias"]).all()
    assert float(to_numpy(result.model.logit_bias)) != -10.0  # trained from its start
    used = json.loads((tmp_path / "sigmoid" / "config.json").read_text())["used"]
    assert used["objective"] == "sigmoid"
    loaded = load_model(result.model_path)
    assert isinstance(loaded.objective, SigmoidObjective)
    assert float(to_numpy(loaded.logit_bias)) == float(to_numpy(result.model.logit_bias))
    # Its checkpoint continues only a sigmoid run, with config.json's record
    # of it or without (a run of an older keras_clip: the model says).
    with pytest.raises(ValueError, match='holds a run with objective="sigmoid"'):
        train(dict(config, steps=4, objective="contrastive"))
    (tmp_path / "sigmoid" / "config.json").unlink()
    with pytest.raises(ValueError, match='holds a run with objective="sigmoid"'):
        train(dict(config, steps=4, objective="contrastive"))
    # WiSE-FT blends two models of one objective.
    with pytest.raises(ValueError, match="wise_ft_alpha blends two models of one objective"):
        train(tiny_config(data, tmp_path / "blend", preset=result.model_path, steps=1,
                          warmup_steps=0, objective="contrastive", wise_ft_alpha=0.5))
    # Fine-tuning the saved towers under CLIP's objective: the towers carry over.
    switched = train(tiny_config(data, tmp_path / "switched", preset=result.model_path,
                                 steps=1, warmup_steps=0, learning_rate=1e-12,
                                 objective="contrastive"))
    assert isinstance(switched.model.objective, ContrastiveObjective)
    for tower in ("image_encoder", "text_encoder"):
        assert max_difference([to_numpy(w) for w in getattr(switched.model, tower).weights],
                              [to_numpy(w) for w in getattr(loaded, tower).weights]) < 1e-6
    assert switched.model.preprocessing == loaded.preprocessing
    assert switched.model.name == loaded.name


class Interrupted(Exception):
    pass


def interrupt():
    raise Interrupted


def test_patch_dropout_trains_is_recorded_and_resumes_exactly(data, tmp_path):
    # The patches dropped are drawn from a seed the checkpoint keeps: a run
    # interrupted after step 3 (checkpoint at 2) ends where one that was not does.
    config = tiny_config(data, tmp_path / "whole", steps=4, patch_dropout=0.5)
    whole = train(config)
    assert whole.model.image_encoder.patch_dropout == 0.5
    used = json.loads((tmp_path / "whole" / "config.json").read_text())["used"]
    assert used["patch_dropout"] == 0.5
    interrupted = dict(config, output_dir=str(tmp_path / "interrupted"))
    with pytest.raises(Interrupted):
        train(interrupted, callbacks=[StopAt(3, interrupt)])
    train(interrupted)
    expected = weights_of(whole.model_path)
    assert max_difference(weights_of(str(tmp_path / "interrupted" / "model.keras")),
                          expected) <= 1e-6
    # (That a set rate changes the steps it traces: clip_model_test's retrace test.)
