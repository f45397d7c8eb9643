import numpy as np
import pytest
import tokenizers

from keras_clip.data import bpe_vocabulary
from keras_clip.data.clip_tokenizer import CLIPTokenizer
from keras_clip.data.text_cleaning import clean_text
from tests.data.caption_corpus import caption_corpus

pytestmark = pytest.mark.backend_independent

CORPUS = caption_corpus(300, seed=2) + ["a photo of a dog on the grass"] * 40 + [
    "eine Katze schläft auf dem Sofa"] * 20


@pytest.fixture(scope="module")
def trained():
    return CLIPTokenizer.train(CORPUS, vocabulary_size=1100, context_length=40)


def test_openai_layout_and_size(trained):
    assert trained.vocabulary_size() == 1100
    vocabulary = list(trained.get_vocabulary())
    assert vocabulary[:512] == bpe_vocabulary.base_symbols()
    assert vocabulary[-2:] == ["<|startoftext|>", "<|endoftext|>"]


def test_frequent_words_become_single_tokens(trained):
    ids = np.asarray(trained(["a photo of a dog on the grass"]))[0]
    assert list(ids[:10]) == [1098, *ids[1:9], 1099]  # 8 words, 8 tokens
    assert trained.detokenize(ids[None]) == ["a photo of a dog on the grass"]


def test_graph_bpe_matches_the_tokenizers_library(trained):
    # The same merges applied by `tokenizers`' own BPE model.
    vocabulary, merges = trained.vocabulary, trained.merges
    reference = tokenizers.Tokenizer(tokenizers.models.BPE(
        vocab=vocabulary, merges=[tuple(m.split(" ")) for m in merges],
        end_of_word_suffix="</w>"))
    reference.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    texts = caption_corpus(100, seed=9)
    ours = np.asarray(trained(texts))
    for text, row in zip(texts, ours):
        words = bpe_vocabulary.byte_level_words(clean_text(text))
        expected = reference.encode(" ".join(words)).ids[:38] if words else []
        assert row[1 : 1 + len(expected)].tolist() == expected, text


def test_rejects_too_small_vocabulary():
    with pytest.raises(ValueError, match="at least 514"):
        CLIPTokenizer.train(["a b c"], vocabulary_size=100)
