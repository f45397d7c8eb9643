"""The XLA flag keras-clip trains with: where it is set, what it buys."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_clip import cli
from keras_clip.training.xla_flags import (
    LOW_MEMORY_CPU_SCHEDULE,
    use_low_memory_cpu_schedule,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_adds_the_flag_after_the_users_flags_and_keeps_a_users_choice():
    assert use_low_memory_cpu_schedule({})["XLA_FLAGS"] == LOW_MEMORY_CPU_SCHEDULE
    theirs = {"XLA_FLAGS": "--xla_dump_to=/tmp/dump"}
    assert (use_low_memory_cpu_schedule(theirs)["XLA_FLAGS"]
            == f"--xla_dump_to=/tmp/dump {LOW_MEMORY_CPU_SCHEDULE}")
    choice = "--xla_cpu_enable_concurrency_optimized_scheduler=true"
    assert use_low_memory_cpu_schedule({"XLA_FLAGS": choice})["XLA_FLAGS"] == choice


def test_the_cli_sets_it_before_parsing_anything(monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert os.environ["XLA_FLAGS"] == LOW_MEMORY_CPU_SCHEDULE


def training_step_temporary_bytes():
    """XLA's temporary buffers for a tiny CLIP's JAX training step, batch 16."""
    import jax

    from tests.helpers import tiny_clip

    model = tiny_clip()
    model.compile(optimizer="adamw")
    rng = np.random.default_rng(0)
    data = ({"images": rng.normal(size=(16, 16, 16, 3)).astype("float32"),
             "token_ids": rng.integers(1, 1000, size=(16, 8)).astype("int32")}, None, None)
    # The state Keras' JAX trainer passes to the step it jits this way.
    model._symbolic_build(data_batch=data)
    model.optimizer.build(model.trainable_variables)
    state = model._get_jax_state(
        trainable_variables=True, non_trainable_variables=True,
        optimizer_variables=True, metrics_variables=True, purge_model_variables=False)
    step = jax.jit(model.train_step, donate_argnums=0).lower(state, data).compile()
    return step.memory_analysis().temp_size_in_bytes


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="measures a JAX step")
def test_a_jax_training_step_needs_less_memory_with_it():
    # Two processes, as XLA reads the flag once per process; run side by side.
    code = ("from tests.training.xla_flags_test import training_step_temporary_bytes as f;"
            " print(f())")
    # No compilation cache: both processes compile the same program.
    plain = {**{k: v for k, v in os.environ.items() if k != "XLA_FLAGS"},
             "JAX_ENABLE_COMPILATION_CACHE": "false"}
    runs = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for env in (plain, use_low_memory_cpu_schedule(dict(plain)))]
    outputs = [run.communicate(timeout=300) for run in runs]
    for run, (_, stderr) in zip(runs, outputs):
        assert run.returncode == 0, stderr[-2000:]
    without, with_flag = (int(stdout.split()[-1]) for stdout, _ in outputs)
    # Measured 0.74x here (730,192 vs 983,376 bytes); ResNet at batch 256: 0.70x.
    assert with_flag < 0.85 * without, (with_flag, without)
