"""`export_saved_model`: a CLIP model as a TF Serving SavedModel, from any backend."""

import os
import subprocess
import sys
import tempfile

import keras

from keras_clip import files
from keras_clip.evaluation.zero_shot import TEMPLATES

# Written last when publishing, so a server polling the version directory
# finds no model until every other file of it is there.
SAVED_MODEL_PB = "saved_model.pb"


def next_version_dir(directory, version=None):
    """`directory/<version>`: the next integer by default; never an existing one."""
    entries = files.listdir(directory) if files.isdir(directory) else []
    visible = [e for e in entries if not e.startswith(".")]
    versions = [int(e) for e in visible if e.isdigit()]
    if len(versions) != len(visible):
        raise ValueError(
            f"{directory!r} is not empty and not a TF Serving model directory (it holds "
            f"{', '.join(sorted(e for e in visible if not e.isdigit()))}); export into "
            "an empty directory or one holding only numbered versions."
        )
    version = (max(versions, default=0) + 1) if version is None else int(version)
    path = files.join(directory, str(version))
    if files.exists(path):
        raise FileExistsError(f"Version {version} already exists at {path!r}; not overwriting.")
    return path


def export_saved_model(model, tokenizer, directory, *, version=None, class_names=None,
                       templates=TEMPLATES, jit_compile=False):
    """Writes `directory/<version>/` for TF Serving and returns its path.

    Signatures: `serving_default`/`embed_images` (image bytes → embeddings),
    `embed_texts` (strings → embeddings), `similarity` (bytes × strings →
    logits, probabilities), `embed_pixels`, `embed_token_ids`, and with
    `class_names` `classify` (bytes → probabilities, top_class) with the
    zero-shot classifier of `class_names` × `templates` baked in. Only core
    TensorFlow ops and tensorflow-text's regex split are used (audited).

    `jit_compile=True` marks the image and text towers for XLA: a CPU serves
    them faster (see benchmarks/README.md), but TF Serving then needs
    `--xla_cpu_compilation_enabled=true`, compiles once per new batch size,
    and its GPU builds cannot run them. Off by default: the plain graph runs
    on every TF Serving binary.

    On JAX and PyTorch the model is saved as `.keras` and exported by a
    TensorFlow-backend subprocess: `.keras` weights load on any backend, and
    only TensorFlow writes SavedModels with string preprocessing inside.

    `directory` may be on any filesystem TensorFlow knows (`gs://…`). The
    SavedModel is built in a local scratch folder, audited, and only then
    published as `directory/<version>` (`publish`): a half-written export
    never appears under a version number.
    """
    path = next_version_dir(directory, version)
    files.makedirs(directory)
    # Locally the scratch folder sits in `directory` (hidden from TF Serving
    # by its dot), so publishing is one rename on one filesystem.
    scratch_parent = None if files.is_url(directory) else directory
    with tempfile.TemporaryDirectory(prefix=".export-", dir=scratch_parent) as scratch:
        built = os.path.join(scratch, "saved_model")
        request = dict(class_names=class_names, templates=list(templates),
                       jit_compile=jit_compile)
        if keras.backend.backend() == "tensorflow":
            write_saved_model(model, tokenizer, built, **request)
        else:
            _export_in_subprocess(model, tokenizer, built, request, scratch)
        publish(built, path)
    return path


def write_saved_model(model, tokenizer, path, *, class_names, templates, jit_compile):
    """The TensorFlow side of `export_saved_model`: writes and audits local `path`."""
    import tensorflow as tf

    from keras_clip.export import op_audit
    from keras_clip.export.serving_module import ServingModule
    from keras_clip.layers.multi_head_self_attention import heads_first_attention

    classifier = None
    if class_names is not None:
        from keras_clip.evaluation.zero_shot import zero_shot_classifier

        classifier = zero_shot_classifier(model, tokenizer, list(class_names), templates)
    module = ServingModule(model, tokenizer, class_names, classifier, jit_compile=jit_compile)
    # Heads-first attention is the graph executor's faster layout; XLA runs
    # keras' dot_product_attention faster.
    with heads_first_attention(model, not jit_compile):
        tf.saved_model.save(module, path, signatures=module.signatures())
    op_audit.audit(os.path.join(path, SAVED_MODEL_PB))


def publish(built, path):
    """Moves local SavedModel folder `built` to `path`, `saved_model.pb` last.

    Locally one rename. On an object store (no atomic folder rename), the
    variables and assets are copied first and `saved_model.pb` last: TF
    Serving loads a version only once its `saved_model.pb` is there.
    """
    if not files.is_url(path):
        os.replace(built, path)
        return
    last = os.path.join(built, SAVED_MODEL_PB)
    for folder, _, names in os.walk(built):
        relative = os.path.relpath(folder, built)
        target = path if relative == "." else files.join(path, *relative.split(os.sep))
        files.makedirs(target)
        for name in names:
            if os.path.join(folder, name) != last:
                files.copy(os.path.join(folder, name), files.join(target, name))
    files.copy(last, files.join(path, SAVED_MODEL_PB))


def _export_in_subprocess(model, tokenizer, path, request, scratch):
    import json

    model.save(os.path.join(scratch, "model.keras"))
    tokenizer.save_vocabulary(scratch)
    with open(os.path.join(scratch, "request.json"), "w") as file:
        json.dump({"path": path, "context_length": tokenizer.context_length, **request},
                  file)
    result = subprocess.run(
        [sys.executable, "-m", "keras_clip.export.export_worker", scratch],
        env=dict(os.environ, KERAS_BACKEND="tensorflow"), capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(
            f"Export through the TensorFlow backend failed:\n{result.stderr[-4000:]}")
