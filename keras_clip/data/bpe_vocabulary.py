"""Byte-level BPE vocabularies for CLIP: OpenAI's merges file and Hugging Face's.

A vocabulary is `(vocabulary, merges)`: a `{token: id}` dict and the merge
rules `"a b"` in priority order, the format keras-hub's BPE tokenizer takes.
"""

import gzip
import json
import os

from keras_hub.src.tokenizers.byte_pair_tokenizer import bytes_to_unicode

from keras_clip import files

START_OF_TEXT = "<|startoftext|>"
END_OF_TEXT = "<|endoftext|>"
END_OF_WORD = "</w>"
# OpenAI's file holds more merges than CLIP used: 49,408 ids = 2 × 256 byte
# symbols (bare and word-final) + 48,894 merges + 2 special tokens.
OPENAI_NUM_MERGES = 48894
OPENAI_MERGES_FILE = "bpe_simple_vocab_16e6.txt.gz"


def base_symbols():
    """The 256 printable stand-ins for bytes, then each with `</w>`: 512."""
    _, symbols = bytes_to_unicode()
    return symbols + [s + END_OF_WORD for s in symbols]


def vocabulary_from_merges(merges):
    """OpenAI's id layout: base symbols, one token per merge, specials."""
    tokens = base_symbols() + ["".join(m.split(" ")) for m in merges]
    tokens += [START_OF_TEXT, END_OF_TEXT]
    return {token: i for i, token in enumerate(tokens)}


# Shipped with the package (see assets/README.md): no download, no other package.
SHIPPED_OPENAI_MERGES = os.path.join(os.path.dirname(__file__), "assets", OPENAI_MERGES_FILE)


def load_openai_vocabulary(path=None):
    """`(vocabulary, merges)` from OpenAI's `bpe_simple_vocab_16e6.txt.gz`.

    Args:
        path: the file (gzipped or plain). None reads the copy shipped with
            keras_clip.
    """
    path = path or SHIPPED_OPENAI_MERGES
    if not files.isfile(path):
        raise FileNotFoundError(f"No BPE merges file at {path!r}.")
    with files.open(path, "rb") as raw:
        data = (gzip.GzipFile(fileobj=raw) if path.endswith(".gz") else raw).read()
    lines = data.decode("utf-8").split("\n")
    # Line 0 is a version header; the file continues past what CLIP used.
    merges = [line for line in lines[1 : OPENAI_NUM_MERGES + 1]]
    if len(merges) != OPENAI_NUM_MERGES or any(len(m.split(" ")) != 2 for m in merges):
        raise ValueError(
            f"{path} is not OpenAI's CLIP merges file: expected "
            f"{OPENAI_NUM_MERGES} merge rules of two symbols after a header line."
        )
    return vocabulary_from_merges(merges), merges


def load_hf_vocabulary(vocabulary_path, merges_path):
    """`(vocabulary, merges)` from Hugging Face's `vocab.json` and `merges.txt`."""
    try:
        with files.open(vocabulary_path) as file:
            vocabulary = json.load(file)
        with files.open(merges_path) as file:
            merges = [
                line.rstrip("\n")
                for line in file
                if line.strip() and not line.startswith("#version")
            ]
    except ValueError as error:  # not JSON, or bytes that are not UTF-8
        raise ValueError(f"{vocabulary_path} or {merges_path} is damaged ({error}).") from None
    if not isinstance(vocabulary, dict) or not all(
            isinstance(token, str) and type(index) is int for token, index in vocabulary.items()):
        raise ValueError(f"{vocabulary_path} is not a JSON object of token → id.")
    if not merges or any(len(merge.split(" ")) != 2 for merge in merges):
        raise ValueError(f"{merges_path} holds no merge rules of two symbols each.")
    return vocabulary, merges


# CLIP's pre-split, for Python (the graph spells the same pattern for RE2).
_PIECES = r"'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+"


def byte_level_words(text):
    """A cleaned caption → its words as byte symbols, as the tokenizer sees them."""
    import regex

    byte_values, symbols = bytes_to_unicode()
    to_symbol = dict(zip([b[0] for b in byte_values], symbols))
    text = " ".join(text.split()).lower()
    return [
        "".join(to_symbol[b] for b in piece.encode("utf-8"))
        for piece in regex.findall(_PIECES, text)
    ]


def train_bpe_vocabulary(texts, vocabulary_size, min_frequency=2):
    """Learns `(vocabulary, merges)` for `CLIPTokenizer` from captions.

    Captions are cleaned and pre-split exactly as the tokenizer does, mapped
    to byte symbols, and `tokenizers`' BPE trainer learns merges with `</w>`
    word ends; ids follow OpenAI's layout (512 byte symbols, one per merge,
    then the two special tokens), so every text has ids.

    Args:
        texts: iterable of caption strings (any language).
        vocabulary_size: int. Total ids, at least 514 (the byte symbols and
            the special tokens); fewer merges are learned if the corpus runs
            out of pairs seen `min_frequency` times.
        min_frequency: int. Fewest occurrences of a pair to merge it.
    """
    import tokenizers

    from keras_clip.data.text_cleaning import clean_text

    num_merges = vocabulary_size - len(base_symbols()) - 2
    if num_merges < 0:
        raise ValueError(
            f"vocabulary_size must be at least {len(base_symbols()) + 2} (byte "
            f"symbols and special tokens), got {vocabulary_size}."
        )
    model = tokenizers.models.BPE(end_of_word_suffix=END_OF_WORD)
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=len(base_symbols()) + num_merges,
        min_frequency=min_frequency,
        initial_alphabet=bytes_to_unicode()[1],
        end_of_word_suffix=END_OF_WORD,
        show_progress=False,
    )
    bpe = tokenizers.Tokenizer(model)
    bpe.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    words = (" ".join(byte_level_words(clean_text(text))) for text in texts)
    bpe.train_from_iterator(words, trainer)
    merges = [" ".join(pair) if isinstance(pair, (list, tuple)) else pair
              for pair in json.loads(bpe.to_str())["model"]["merges"]]
    merges = merges[:num_merges]
    if not merges:
        raise ValueError(
            f"the captions hold no pair of symbols seen {min_frequency} times, so there "
            "is nothing to learn: give more captions, or use the openai tokenizer.")
    return vocabulary_from_merges(merges), merges
