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
def test_colab_tpu_notebook_runs_top_to_bottom_over_two_devices(tmp_path):
    """The notebook as written, in a Jupyter kernel, in its smoke setting.

    Two fake host devices stand in for the TPU cores; the smoke setting
    only shrinks the run (4 steps of 16) and skips the pip install.
    """
    from tests.training.distribution_test import two_host_devices

    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(os.path.join(ROOT, "examples", "finetune_colab_tpu.ipynb"), 4)
    env = dict(os.environ, KERAS_CLIP_NOTEBOOK_SMOKE="1",
               KERAS_CLIP_NOTEBOOK_OUTPUT=str(tmp_path), PYTHONPATH=ROOT,
               TF_CPP_MIN_LOG_LEVEL="3", XLA_FLAGS=two_host_devices())
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.km = client.kernel_manager_class(kernel_name="python3", env=env)
    client.execute(env=env)
    printed = "".join(output.get("text", "") for cell in notebook.cells
                      for output in cell.get("outputs", []))
    assert "2 cpu device(s)" in printed
    assert "4 steps over 2 device(s) (data_parallel)" in printed
    assert printed.count("zero-shot top-1") == 3
    assert os.path.isfile(tmp_path / "saved_models" / "clip" / "1" / "saved_model.pb")
