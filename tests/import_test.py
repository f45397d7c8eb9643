"""keras_clip's layering: who may import whom, and a core that needs no TensorFlow."""

import ast
import os
import pathlib
import subprocess
import sys

import keras
import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "keras_clip"
CORE = ("layers", "models", "losses")
# Modules any part may import: they import only each other.
SHARED = {"preprocessing", "progress_line", "lazy_exports", "files"}
# Each part of keras_clip/ (a folder, or a top-level module) and the parts it
# may import besides itself and SHARED: one direction, top to bottom.
ALLOWED = {
    "layers": set(),
    "losses": {"layers"},
    "models": {"layers", "losses"},
    "data": set(),
    "training": {"models", "losses", "data"},
    "evaluation": {"models", "data"},
    "export": {"models", "layers", "data", "evaluation"},
    "convert": {"models", "data"},
    # The package's entry points use everything.
    "loading": {"__init__", "models", "training"},
    "commands": {"__init__", "loading", "models", "data", "training", "evaluation", "export",
                 "convert", "demo"},
    "cli": {"commands", "training"},
    "demo": {"__init__", "models", "data", "training", "evaluation", "export", "demo_plots"},
    "demo_plots": {"data", "evaluation"},
    "__init__": set(),
}
ALLOWED.update({name: set() for name in SHARED})
# The TensorFlow modules in the core, loaded only when the backend is
# TensorFlow (and TensorFlow is loaded): cross_replica's tf.distribute
# all-gather, and the TensorFlow backend's cached-gradient step (GradientTape).
TENSORFLOW_IN_CORE = {"losses/tf_replica.py", "models/cached_gradients_tensorflow.py"}


def imported_modules(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module == "keras_clip":
            # `from keras_clip import files` imports a module, not __init__'s names.
            for alias in node.names:
                is_module = (PACKAGE / f"{alias.name}.py").exists()
                yield f"keras_clip.{alias.name}" if is_module else node.module
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def part_of(path):
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def imported_part(module):
    parts = module.split(".")
    if parts[0] != "keras_clip":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_part_of_the_package_is_in_the_table():
    parts = {part_of(path) for path in PACKAGE.rglob("*.py")}
    assert parts - set(ALLOWED) == set()


def test_parts_import_only_what_the_table_allows():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = part_of(path)
        for module in imported_modules(path):
            target = imported_part(module)
            if target in (None, source) or target in SHARED:
                continue
            if target not in ALLOWED[source]:
                offenders.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert offenders == []


def test_the_table_has_no_cycles():
    def reaches(start, goal, seen=()):
        return any(nxt == goal or (nxt not in seen and reaches(nxt, goal, (*seen, nxt)))
                   for nxt in ALLOWED[start])

    assert [part for part in ALLOWED if reaches(part, part)] == []


@pytest.mark.parametrize("folder", CORE)
def test_core_sources_do_not_import_tensorflow(folder):
    offenders = [
        f"{path.relative_to(PACKAGE)}: {module}"
        for path in (PACKAGE / folder).rglob("*.py")
        if str(path.relative_to(PACKAGE)) not in TENSORFLOW_IN_CORE
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
