"""One way to name a tokenizer, the same for every command and for `train`.

A tokenizer spec is a string:

- `"openai"`: OpenAI's CLIP vocabulary, shipped with keras_clip;
- a directory holding `vocab.json` and `merges.txt`: what `keras-clip
  train-tokenizer`, `train`, `convert` and `demo` write;
- a merges file: OpenAI's `bpe_simple_vocab_16e6.txt[.gz]` layout, or a
  Hugging Face `merges.txt` with its `vocab.json` beside it;
- a SentencePiece model (`spiece.model`, SigLIP's tokenizer), or a
  directory holding one (what `convert` writes for a SigLIP model).

This module imports no TensorFlow until a tokenizer is built, so the CLI
can describe specs in its help at once.
"""

import gzip
import json
import os

from keras_clip import files
from keras_clip.preprocessing import PREPROCESSING_FILE

OPENAI = "openai"
SENTENCEPIECE = "sentencepiece"
VOCABULARY_FILE, MERGES_FILE = "vocab.json", "merges.txt"
SENTENCEPIECE_FILE = "spiece.model"  # siglip_tokenizer.MODEL_FILE, without TensorFlow
HELP = ("'openai' (OpenAI's vocabulary, shipped with keras_clip), a directory with "
        "vocab.json and merges.txt (from train-tokenizer, train, convert or demo) or "
        "with spiece.model (SigLIP's), a merges file, or a SentencePiece .model file")
#: The context length of a SentencePiece tokenizer with no record (SigLIP's).
SENTENCEPIECE_CONTEXT = 64


def tokenizer_files(spec):
    """`("openai", path)`, `("hf", (vocab.json, merges.txt))` or
    `("sentencepiece", spiece.model)` that `spec` names.

    Raises a one-line `ValueError` or `FileNotFoundError` naming what is
    missing, before anything is built.
    """
    spec = os.fspath(spec)
    if spec == OPENAI:
        return OPENAI, None
    if files.isdir(spec) and files.isfile(files.join(spec, SENTENCEPIECE_FILE)) and not (
            files.isfile(files.join(spec, MERGES_FILE))):
        return SENTENCEPIECE, files.join(spec, SENTENCEPIECE_FILE)
    if files.isdir(spec):
        paths = tuple(files.join(spec, name) for name in (VOCABULARY_FILE, MERGES_FILE))
        missing = [name for name, path in zip((VOCABULARY_FILE, MERGES_FILE), paths)
                   if not files.isfile(path)]
        if missing:
            raise FileNotFoundError(
                f"tokenizer directory {spec!r} has no {' or '.join(missing)} (expected "
                f"the {VOCABULARY_FILE} and {MERGES_FILE} that train-tokenizer writes).")
        return "hf", paths
    if not files.isfile(spec):
        raise FileNotFoundError(f"no tokenizer at {spec!r}: expected {HELP}.")
    if spec.endswith(".model"):
        return SENTENCEPIECE, spec
    if os.path.basename(spec) == MERGES_FILE or _first_line(spec).startswith("#version"):
        beside = files.join(files.dirname(spec), VOCABULARY_FILE)  # Hugging Face's layout
        if not files.isfile(beside):
            raise FileNotFoundError(
                f"{spec} is a Hugging Face merges file: it needs the {VOCABULARY_FILE} "
                "written with it, beside it (or pass their folder).")
        return "hf", (beside, spec)
    return OPENAI, spec  # OpenAI's layout: the vocabulary follows from the merges


def _first_line(path):
    try:
        with files.open(path, "rb") as raw:
            head = (gzip.GzipFile(fileobj=raw) if path.endswith(".gz") else raw).read(1024)
    except (OSError, EOFError):  # not gzip after all: the reader says what is wrong
        return ""
    return head.decode("utf-8", errors="replace").partition("\n")[0][:256]


def saved_context_length(spec):
    """The context length a tokenizer directory records, or None."""
    settings = files.join(os.fspath(spec), PREPROCESSING_FILE)
    if not files.isfile(settings):
        return None
    with files.open(settings) as file:
        try:
            return json.load(file).get("context_length")
        except (ValueError, AttributeError):
            raise ValueError(f"{settings} is not a JSON object.") from None


def load_tokenizer(spec=OPENAI, context_length=None):
    """The `CLIPTokenizer` or `SigLIPTokenizer` a spec names (module docstring).

    Args:
        spec: a tokenizer spec.
        context_length: ids per text; None reads it from the directory's
            `preprocessing.json`, else 77 (64 for a SentencePiece model).

    Example:
    >>> tokenizer = load_tokenizer("runs/clip")  # the one `train` saved
    >>> tokenizer.context_length
    16
    """
    from keras_clip.data.clip_tokenizer import CLIPTokenizer

    kind, paths = tokenizer_files(spec)
    if context_length is None:
        context_length = (saved_context_length(spec) if files.isdir(spec) else None) or (
            SENTENCEPIECE_CONTEXT if kind == SENTENCEPIECE else 77)
    if kind == SENTENCEPIECE:
        from keras_clip.data.siglip_tokenizer import SigLIPTokenizer

        return SigLIPTokenizer(paths, context_length=context_length)
    if kind == OPENAI:
        return CLIPTokenizer.from_openai(paths, context_length=context_length)
    return CLIPTokenizer.from_hf(*paths, context_length=context_length)


def same_ids_as(tokenizer):
    """What decides a tokenizer's ids: equal for two tokenizers giving the same ones."""
    if hasattr(tokenizer, "proto"):  # a SigLIPTokenizer
        return SENTENCEPIECE, tokenizer.proto
    return "bpe", tokenizer.vocabulary, tuple(tokenizer.merges)


def check_fits(tokenizer, model, spec):
    """Refuses a tokenizer whose ids the model's text tower does not embed."""
    size = model.text_encoder.vocabulary_size
    if tokenizer.vocabulary_size() != size:
        raise ValueError(
            f"tokenizer {spec!r} has {tokenizer.vocabulary_size()} ids but the model's text "
            f"tower embeds {size}: pass the tokenizer the model was trained with (train "
            "saves it beside model.keras).")


def saved_tokenizer_near(model_path):
    """The tokenizer directory saved with a model, or None.

    `train` and `convert` save the tokenizer (`vocab.json` and
    `merges.txt`, or `spiece.model`) beside `model.keras`; a
    checkpoint (`run/checkpoints/step-N.keras`) finds its run's.
    """
    path = files.absolute(model_path).rstrip("/")
    folder = path if files.isdir(path) else files.dirname(path)
    for candidate in (folder, files.dirname(folder)):
        if all(files.isfile(files.join(candidate, name))
               for name in (VOCABULARY_FILE, MERGES_FILE)) or files.isfile(
                   files.join(candidate, SENTENCEPIECE_FILE)):
            return candidate
    return None
