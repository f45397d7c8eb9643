"""Every `>>>` example in keras_clip's docstrings runs and prints what it shows.

Examples run with doctest in a scratch directory that holds what they refer
to: `data/train-*.tfrecord` (synthetic shards) and `runs/clip` (a tiny
model with its tokenizer and record, as `train` leaves them), with `np`,
`keras` and `keras_clip` imported.
"""

import doctest
import importlib
import os
import pathlib

import keras
import numpy as np
import pytest

import keras_clip

PACKAGE = pathlib.Path(keras_clip.__file__).parent


def modules_with_examples():
    for path in sorted(PACKAGE.rglob("*.py")):
        if ">>> " in path.read_text(encoding="utf-8"):
            parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
            yield ".".join(parts).removesuffix(".__init__")


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A working directory with the shards and the run the examples name."""
    from keras_clip.data.clip_tokenizer import CLIPTokenizer
    from keras_clip.data.synthetic_pairs import write_synthetic_tfrecords
    from keras_clip.models.clip_model import CLIPModel

    directory = tmp_path_factory.mktemp("examples")
    previous = os.getcwd()
    os.chdir(directory)
    try:
        write_synthetic_tfrecords("data", count=16, image_size=32)
        # What `keras-clip train` leaves in its output_dir, without training.
        model = CLIPModel.from_preset("tiny-vit")
        os.makedirs("runs/clip")
        model.save("runs/clip/model.keras")
        model.preprocessing.save("runs/clip")
        CLIPTokenizer.from_openai(context_length=16).save_vocabulary("runs/clip")
        # A SentencePiece model where a converted SigLIP keeps SigLIP's.
        from tests.data.caption_corpus import caption_corpus
        from tests.data.fixtures import write_sentence_piece_model

        os.makedirs("runs/siglip")
        write_sentence_piece_model("runs/siglip/spiece", caption_corpus(600), 400)
        yield directory
    finally:
        os.chdir(previous)


@pytest.mark.parametrize("module_name", list(modules_with_examples()))
def test_docstring_examples_run(module_name, scratch):
    module = importlib.import_module(module_name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    names = {**vars(module), "np": np, "keras": keras, "keras_clip": keras_clip}
    tests = finder.find(module, module_name, globs=names)
    failures = []
    attempted = sum(runner.run(test, out=failures.append).attempted for test in tests)
    assert attempted, f"{module_name} mentions >>> but doctest finds no example"
    assert not failures, "".join(failures)
