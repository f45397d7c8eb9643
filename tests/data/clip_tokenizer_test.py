import importlib.util
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from keras_clip.data.bpe_vocabulary import load_openai_vocabulary
from keras_clip.data.clip_tokenizer import CLIPTokenizer
from tests.data.caption_corpus import caption_corpus


def reference_tokenizer():
    """OpenAI's tokenizer as OpenCLIP ships it, loaded from its own file.

    Importing the `open_clip` package would pull in torchvision; its
    tokenizer module needs only ftfy, regex and torch.
    """
    spec = importlib.util.find_spec("open_clip")
    assert spec is not None, "pip install --no-deps open_clip_torch (see .ci/run)"
    path = os.path.join(spec.submodule_search_locations[0], "tokenizer.py")
    module_spec = importlib.util.spec_from_file_location("open_clip_tokenizer", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tokenizer():
    return CLIPTokenizer.from_openai()


@pytest.fixture(scope="module")
def reference():
    return reference_tokenizer()


def test_hello_world(tokenizer):
    ids = np.asarray(tokenizer(["hello world"]))
    assert ids.shape == (1, 77) and ids.dtype == np.int32
    assert ids[0, :5].tolist() == [49406, 3306, 1002, 49407, 0]
    assert (ids[0, 4:] == 0).all()


@pytest.mark.slow
def test_matches_reference_eagerly_and_in_tf_data(tokenizer, reference):
    corpus = caption_corpus(1200)
    expected = reference.SimpleTokenizer()(corpus).numpy()
    eager = np.asarray(tokenizer(corpus))
    mismatches = [corpus[i] for i in np.where((eager != expected).any(1))[0]]
    assert not mismatches, mismatches[:5]
    # In a graph the text arrives cleaned, as make-tfrecords writes it.
    cleaned = [reference.basic_clean(text) for text in corpus]
    dataset = tf.data.Dataset.from_tensor_slices(cleaned).batch(100).map(tokenizer)
    in_graph = np.concatenate([batch.numpy() for batch in dataset])
    np.testing.assert_array_equal(in_graph, expected)


def test_scalar_and_tf_function_agree(tokenizer):
    text = "Two dogs, 3 cats & 1 bird."
    eager = np.asarray(tokenizer(text))
    assert eager.shape == (77,)
    graph = tf.function(lambda t: tokenizer(t))(tf.constant([text]))
    np.testing.assert_array_equal(graph.numpy()[0], eager)


def test_truncation_keeps_end_of_text_last(reference):
    tokenizer = CLIPTokenizer.from_openai(context_length=8)
    text = "one two three four five six seven eight nine"
    ids = np.asarray(tokenizer([text]))
    assert ids.shape == (1, 8)
    assert ids[0, 0] == 49406 and ids[0, -1] == 49407
    expected = reference.SimpleTokenizer(context_length=8)([text]).numpy()
    np.testing.assert_array_equal(ids, expected)


def test_empty_text_is_just_the_framing(tokenizer):
    assert np.asarray(tokenizer([""]))[0, :3].tolist() == [49406, 49407, 0]


def test_special_token_strings_are_text(tokenizer):
    # A caption cannot plant an end-of-text id before its real end.
    ids = np.asarray(tokenizer(["a <|endoftext|> b"]))[0]
    assert list(ids).count(49407) == 1
    assert list(ids).index(49407) > 4


def test_eager_strings_are_cleaned(tokenizer):
    np.testing.assert_array_equal(
        np.asarray(tokenizer(["fish &amp;amp; chips"])),
        np.asarray(tokenizer(["fish & chips"])),
    )


def test_memory_does_not_grow_with_new_words(tokenizer):
    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("qxzjkv"), size=9)) for _ in range(300)]
    tokenizer([" ".join(words)])
    tf.data.Dataset.from_tensor_slices(words).batch(50).map(tokenizer).reduce(0, lambda a, b: a)
    assert int(tokenizer.cache.id2value.size()) == 0


def test_detokenize(tokenizer):
    ids = tokenizer(["A photo of 2 cats!"])
    assert tokenizer.detokenize(ids) == ["a photo of 2 cats !"]


def test_hugging_face_files_give_the_same_ids(tmp_path, tokenizer):
    vocabulary, merges = load_openai_vocabulary()
    (tmp_path / "vocab.json").write_text(json.dumps(vocabulary))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    hf = CLIPTokenizer.from_hf(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"))
    texts = caption_corpus(50, seed=3)
    np.testing.assert_array_equal(np.asarray(hf(texts)), np.asarray(tokenizer(texts)))


def test_assets_round_trip(tmp_path, tokenizer):
    tokenizer.save_assets(str(tmp_path))
    clone = CLIPTokenizer.from_config(tokenizer.get_config())
    clone.load_assets(str(tmp_path))
    assert clone.context_length == 77
    texts = caption_corpus(20, seed=5)
    np.testing.assert_array_equal(np.asarray(clone(texts)), np.asarray(tokenizer(texts)))


def test_bad_inputs_and_configurations(tokenizer, tmp_path):
    with pytest.raises(ValueError, match="1-D batch of strings"):
        tokenizer([["a", "b"]])
    with pytest.raises(ValueError, match="1-D batch of strings"):
        tokenizer(np.array([["a", "b"], ["c", "d"]]))
    np.testing.assert_array_equal(  # NumPy string arrays are cleaned too
        np.asarray(tokenizer(np.array(["fish &amp; chips"]))),
        np.asarray(tokenizer(["fish & chips"])))
    with pytest.raises(ValueError, match="context_length must leave room"):
        CLIPTokenizer.from_openai(context_length=1)
    vocabulary, merges = load_openai_vocabulary()
    del vocabulary["a"]
    with pytest.raises(ValueError, match="byte symbols"):
        CLIPTokenizer(vocabulary, [m for m in merges if "a" not in m.split(" ")])
    with pytest.raises(FileNotFoundError, match="no such file|No such file"):
        CLIPTokenizer.from_openai(str(tmp_path / "missing.txt.gz"))
    (tmp_path / "bad.txt").write_text("#version\nnot merges\n")
    with pytest.raises(ValueError, match="not OpenAI's CLIP merges file"):
        CLIPTokenizer.from_openai(str(tmp_path / "bad.txt"))
