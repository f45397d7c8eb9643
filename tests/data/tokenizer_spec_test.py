"""One tokenizer spec for every command: 'openai', a folder, or a merges file."""

import gzip
import json
import os

import keras
import pytest

from keras_clip.data import bpe_vocabulary
from keras_clip.data.clip_tokenizer import CLIPTokenizer
from keras_clip.data.tokenizer_spec import (
    load_tokenizer,
    saved_tokenizer_near,
    tokenizer_files,
)

pytestmark = pytest.mark.backend_independent


def ids(tokenizer, text="a photo of a cat"):
    return keras.ops.convert_to_numpy(tokenizer([text])).tolist()


def test_openai_is_shipped_and_needs_nothing_else():
    path = bpe_vocabulary.SHIPPED_OPENAI_MERGES
    assert os.path.isfile(path) and "site-packages/open_clip" not in path
    tokenizer = load_tokenizer("openai")
    assert tokenizer.vocabulary_size() == 49408 and tokenizer.context_length == 77
    assert ids(tokenizer, "hello world")[0][:4] == [49406, 3306, 1002, 49407]


def test_every_spelling_of_one_tokenizer_gives_the_same_ids(tmp_path):
    trained = CLIPTokenizer.train(["a red square", "a blue circle", "two red circles"] * 4,
                                  600, context_length=12)
    folder = tmp_path / "tok"
    trained.save_vocabulary(str(folder))
    (folder / "preprocessing.json").write_text(json.dumps({"context_length": 12}))
    from_folder = load_tokenizer(str(folder))
    assert from_folder.context_length == 12  # read from preprocessing.json
    assert ids(from_folder) == ids(trained)
    assert ids(load_tokenizer(str(folder / "merges.txt"), 12)) == ids(trained)
    # OpenAI's file layout, given by path, is OpenAI's vocabulary.
    with gzip.open(bpe_vocabulary.SHIPPED_OPENAI_MERGES, "rt", encoding="utf-8") as file:
        (tmp_path / "copy.txt").write_text(file.read(), encoding="utf-8")
    assert ids(load_tokenizer(str(tmp_path / "copy.txt"))) == ids(load_tokenizer("openai"))


def test_a_wrong_spec_is_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no tokenizer at .*expected 'openai'"):
        tokenizer_files(str(tmp_path / "nothing"))
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "vocab.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="has no merges.txt"):
        tokenizer_files(str(tmp_path / "half"))


def test_a_model_finds_the_tokenizer_saved_beside_it(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    for name in ("vocab.json", "merges.txt"):
        (run / name).write_text("")
    assert saved_tokenizer_near(str(run / "model.keras")) == str(run)
    assert saved_tokenizer_near(str(run / "checkpoints" / "step-2.keras")) == str(run)
    assert saved_tokenizer_near(str(run)) == str(run)
    assert saved_tokenizer_near(str(tmp_path / "elsewhere.keras")) is None
