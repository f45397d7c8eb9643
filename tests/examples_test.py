"""The training examples run end to end with --smoke."""

import os
import subprocess
import sys

import keras
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_example(name, tmp_path, **env):
    output = tmp_path / "model.keras"
    result = subprocess.run(
        [sys.executable, os.path.join("examples", name), "--smoke", "--output", str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3", **env),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert output.exists()
    return result.stdout


@pytest.mark.slow
def test_train_from_scratch_smoke(tmp_path):
    assert "saved" in run_example("train_from_scratch.py", tmp_path,
                                  KERAS_BACKEND=keras.backend.backend())


@pytest.mark.slow
@pytest.mark.skipif(keras.backend.backend() != "jax", reason="the Colab TPU path is JAX")
def test_finetune_colab_tpu_smoke_over_two_devices(tmp_path):
    stdout = run_example("finetune_colab_tpu.py", tmp_path, KERAS_BACKEND="jax",
                         XLA_FLAGS="--xla_force_host_platform_device_count=2")
    assert "2 cpu device(s)" in stdout and "WiSE-FT alpha 0.5" in stdout
