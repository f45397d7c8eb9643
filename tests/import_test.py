"""The model core runs on any backend: layers/, models/, losses/ never import TF."""

import ast
import os
import pathlib
import subprocess
import sys

import keras
import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "keras_clip"
CORE = ("layers", "models", "losses")


def imported_modules(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


@pytest.mark.parametrize("folder", CORE)
def test_core_sources_do_not_import_tensorflow(folder):
    offenders = [
        f"{path.name}: {module}"
        for path in (PACKAGE / folder).rglob("*.py")
        for module in imported_modules(path)
        if module.split(".")[0] in ("tensorflow", "tensorflow_text", "tf_keras")
    ]
    assert not offenders


@pytest.mark.skipif(keras.backend.backend() == "tensorflow",
                    reason="on TensorFlow, TensorFlow is meant to load")
def test_core_runs_without_loading_tensorflow():
    backend = keras.backend.backend()
    script = (
        "import sys, numpy as np\n"
        "import keras_clip, keras_clip.layers, keras_clip.models, keras_clip.losses\n"
        "model = keras_clip.CLIPModel.from_preset('tiny-vit')\n"
        "model({'images': np.zeros((1, 32, 32, 3)), 'token_ids': np.zeros((1, 16), 'int32')})\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'tensorflow')\n"
        "assert not loaded, loaded[:5]\n"
        "assert keras_clip.CLIPTokenizer.__name__ == 'CLIPTokenizer'  # lazy, on use\n"
    )
    subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "KERAS_BACKEND": backend}, check=True,
    )
