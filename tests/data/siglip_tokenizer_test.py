import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import transformers

from keras_clip.data import siglip_tokenizer
from keras_clip.data.siglip_tokenizer import SigLIPTokenizer
from tests.data.caption_corpus import caption_corpus
from tests.data.fixtures import write_sentence_piece_model

pytestmark = pytest.mark.backend_independent


def varied_captions():
    """1,000 captions of the shared awkward corpus, and what else SigLIP's rules touch."""
    captions = caption_corpus(942, seed=3)
    captions += [
        "▁a cat", "a▁cat", "  leading and trailing  ", "!!!", "...a cat...", "(a) [b] {c}",
        "tab\tseparated\tvalues", "nul\x00inside", "İSTANBUL", "ΟΔΟΣ ΣΟΦΙΑΣ", "ǅ Ǆ ǆ",
        "a  \u2028 b \u0085 c \u200b d", "x" * 3000, "word " * 200,
        "café naïve coöperate " * 40, "🐈" * 70, "😀 🐈 👍🏽", "\u3000東京\u3000", "ﬁne ﬂower",
        "the_end", " ".join(["supercalifragilistic"] * 30),
        # Characters that give no piece, past the first cut of a long text.
        "\u200b" * 5000 + "a photo of a cat", "\x01" * 5000 + "two dogs",
    ]
    # Ties: runs of one letter, numbers with zeros (split in several equal ways).
    captions += ["a" * length for length in range(10, 60, 2)]
    captions += [f"costs {value}" for value in (5000, 3000, 10**7, 10**15, 120000)]
    captions += ["0" * 20, "coolll a cat", "zzzzzzzzzzzz", "hmmmmmmm 1000000 yes"]
    captions.append(" ".join(caption_corpus(240, seed=4)))  # a 20,000-character caption
    return captions


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    texts = [text.lower() for text in caption_corpus(1200, seed=0)]
    return write_sentence_piece_model(tmp_path_factory.mktemp("spm") / "spiece", texts)


@pytest.fixture(scope="module")
def reference(model_file):
    return transformers.SiglipTokenizer(model_file)


def reference_ids(reference, captions, context_length):
    return np.array(reference(captions, padding="max_length", max_length=context_length,
                              truncation=True)["input_ids"])


@pytest.mark.parametrize("context_length", [64, 16])
def test_ids_equal_transformers_on_1000_varied_captions(model_file, reference, context_length):
    captions = varied_captions()
    assert len(captions) == 1000 and max(len(text) for text in captions) > 20_000
    tokenizer = SigLIPTokenizer(model_file, context_length=context_length)
    expected = reference_ids(reference, captions, context_length)
    ids = np.asarray(tokenizer(captions))
    assert ids.shape == (1000, context_length) and ids.dtype == np.int32
    mismatched = [text for text, got, want in zip(captions, ids, expected)
                  if not np.array_equal(got, want)]
    assert not mismatched, (len(mismatched), mismatched[:3])
    # The corpus reaches every rule: long rows are cut with </s> last, short ones padded.
    assert (ids[:, -1] == 1).all() and (ids == 2).any()
    assert len({tuple(row) for row in ids}) > 900


def test_lowercasing_does_not_depend_on_the_locale():
    # ICU's lowercasing follows LANG / LC_ALL (Turkish "I" → "ı"; Lithuanian,
    # Azeri have their own rules, met the same way); both tokenizers
    # lowercase with text_case.lowercase, which must not.
    texts = ["PICTURE IN THE CITY", "İSTANBUL Ìa Íb Ĩc JIJ Į", "ΟΔΟΣ ΣΟΦΙΑΣ", "nul\x00INSIDE"]
    script = ("import tensorflow as tf\n"
              "from keras_clip.data.text_case import lowercase\n"
              f"print([t.decode() for t in lowercase(tf.constant({texts!r})).numpy()])")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=dict(os.environ, LC_ALL="tr_TR.UTF-8", TF_CPP_MIN_LOG_LEVEL="3"),
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == str([text.lower() for text in texts])


def test_tf_data_and_a_traced_graph_give_the_eager_ids(model_file):
    tokenizer = SigLIPTokenizer(model_file, context_length=16)
    captions = ["A photo of a CAT!", "", "two dogs, running"]
    eager = np.asarray(tokenizer(captions))
    mapped = next(iter(tf.data.Dataset.from_tensor_slices(captions).batch(3).map(tokenizer)))
    traced = tf.function(tokenizer)(tf.constant(captions))
    np.testing.assert_array_equal(mapped.numpy(), eager)
    np.testing.assert_array_equal(traced.numpy(), eager)
    np.testing.assert_array_equal(np.asarray(tokenizer("A photo of a CAT!")), eager[0])


def test_whitespace_class_is_pythons():
    # RE2's \x{hex} is Python's \Uxxxxxxxx.
    spelled = re.compile(re.sub(r"\\x\{([0-9a-f]+)\}",
                                lambda hex_code: "\\U%08x" % int(hex_code[1], 16),
                                siglip_tokenizer.WHITESPACE))
    for code in range(sys.maxunicode + 1):
        if 0xD800 <= code < 0xE000:
            continue
        character = chr(code)
        assert bool(spelled.fullmatch(character)) == character.isspace(), hex(code)


def test_saves_and_loads_and_bad_models_are_refused(model_file, tmp_path):
    tokenizer = SigLIPTokenizer(model_file, context_length=16)
    tokenizer.save_vocabulary(str(tmp_path / "saved"))
    loaded = SigLIPTokenizer.from_preset(str(tmp_path / "saved"), context_length=16)
    captions = ["a small red circle", "two shapes"]
    np.testing.assert_array_equal(np.asarray(loaded(captions)), np.asarray(tokenizer(captions)))
    assert (loaded.vocabulary_size(), loaded.end_token_id, loaded.pad_token_id) == (800, 1, 1)
    (tmp_path / "bad.model").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="Not a SentencePiece model"):
        SigLIPTokenizer(str(tmp_path / "bad.model"))
    with pytest.raises(FileNotFoundError, match="No SentencePiece model"):
        SigLIPTokenizer(str(tmp_path / "nowhere.model"))
    with pytest.raises(ValueError, match="1-D batch of strings"):
        tokenizer([["nested"]])
