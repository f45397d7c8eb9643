"""`export_saved_model`: a CLIP model as a TF Serving SavedModel, from any backend."""

import os
import shutil
import subprocess
import sys
import tempfile

import keras

from keras_clip.evaluation.zero_shot import TEMPLATES


def next_version_dir(directory, version=None):
    """`directory/<version>`: the next integer by default; never an existing one."""
    entries = os.listdir(directory) if os.path.isdir(directory) else []
    visible = [e for e in entries if not e.startswith(".")]
    versions = [int(e) for e in visible if e.isdigit()]
    if len(versions) != len(visible):
        raise ValueError(
            f"{directory!r} is not empty and not a TF Serving model directory (it holds "
            f"{', '.join(sorted(e for e in visible if not e.isdigit()))}); export into "
            "an empty directory or one holding only numbered versions."
        )
    version = (max(versions, default=0) + 1) if version is None else int(version)
    path = os.path.join(directory, str(version))
    if os.path.exists(path):
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
    """
    path = next_version_dir(directory, version)
    if keras.backend.backend() != "tensorflow":
        return _export_in_subprocess(model, tokenizer, directory, path, class_names, templates,
                                     jit_compile)
    import tensorflow as tf

    from keras_clip.export import op_audit
    from keras_clip.export.serving_module import ServingModule
    from keras_clip.layers.multi_head_self_attention import heads_first_attention

    classifier = None
    if class_names is not None:
        from keras_clip.evaluation.zero_shot import zero_shot_classifier

        classifier = zero_shot_classifier(model, tokenizer, list(class_names), templates)
    module = ServingModule(model, tokenizer, class_names, classifier, jit_compile=jit_compile)
    partial = tempfile.mkdtemp(dir=directory if os.path.isdir(directory) else None)
    try:
        # Heads-first attention is the graph executor's faster layout; XLA
        # runs keras' dot_product_attention faster.
        with heads_first_attention(model, not jit_compile):
            tf.saved_model.save(module, partial, signatures=module.signatures())
        op_audit.audit(os.path.join(partial, "saved_model.pb"))
        os.makedirs(directory, exist_ok=True)
        os.replace(partial, path)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return path


def _export_in_subprocess(model, tokenizer, directory, path, class_names, templates,
                          jit_compile):
    import json

    with tempfile.TemporaryDirectory() as scratch:
        model.save(os.path.join(scratch, "model.keras"))
        tokenizer.save_vocabulary(scratch)
        with open(os.path.join(scratch, "request.json"), "w") as file:
            json.dump({"directory": directory, "version": os.path.basename(path),
                       "class_names": class_names, "templates": list(templates),
                       "context_length": tokenizer.context_length,
                       "jit_compile": jit_compile}, file)
        result = subprocess.run(
            [sys.executable, "-m", "keras_clip.export.export_worker", scratch],
            env=dict(os.environ, KERAS_BACKEND="tensorflow"), capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(
            f"Export through the TensorFlow backend failed:\n{result.stderr[-4000:]}")
    return path
