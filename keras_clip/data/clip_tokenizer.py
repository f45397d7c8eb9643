"""CLIPTokenizer: CLIP's byte-level BPE as a Keras preprocessing layer."""

import json

import keras
import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text
from keras_hub.tokenizers import BytePairTokenizer

from keras_clip import files
from keras_clip.data import bpe_vocabulary
from keras_clip.data.bpe_merge import BytePairMerge
from keras_clip.data.host_tensorflow import keep_tensorflow_on_the_host
from keras_clip.data.text_case import lowercase
from keras_clip.data.text_cleaning import clean_text

keep_tensorflow_on_the_host()  # before TensorFlow's first op

# Python's str.split() whitespace, spelled for RE2 (whose \s is ASCII only).
WHITESPACE = r"[\t\n\x{0b}\f\r\x{1c}-\x{1f}\x{85}\p{Z}]+"
# CLIP's pre-split: English contractions, runs of letters, single digits,
# runs of anything else but spaces. RE2 alternation is leftmost-first, as in
# Python's regex module, so the pieces are the same.
PIECES = r"'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+"
EAGER_CHUNK = 128


@keras.saving.register_keras_serializable(package="keras_clip")
class CLIPTokenizer(BytePairMerge, BytePairTokenizer):
    """Strings → `(N, context_length)` int32 ids, as OpenAI's CLIP tokenizer.

    Whitespace runs collapse to one space, text is lowercased, pre-split into
    contractions, letter runs, single digits and symbol runs, then each piece
    is byte-pair encoded with `</w>` closing its last symbol. Ids are framed
    by `<|startoftext|>` and `<|endoftext|>`, padded with 0, and text too
    long for the context is cut so that end-of-text stays last.

    One TensorFlow computation serves eager calls, `tf.data` maps and
    exported graphs, so all three give the same ids. Eager calls on Python
    strings first run `clean_text` (ftfy, HTML entities), which a graph
    cannot; captions written by `keras-clip make-tfrecords` are cleaned
    already. The layer keeps no cache: memory stays flat in a server that
    sees new words forever. The literal strings `<|startoftext|>` and
    `<|endoftext|>` inside a caption are tokenized as text, so a caption
    cannot move the point where the text tower reads its features.

    A text costs at most 50 ms on 2 CPU cores however long it is (tested;
    `benchmarks/tokenizer_cost.py` measures 2-12 ms for a
    `tf.string` in, as `tf.data` and TF Serving call it). Only what can
    reach the ids is encoded: the first `max_text_bytes` bytes of the
    cleaned text and its first `context_length - 2` pieces (each piece
    gives at least one token). `max_text_bytes` is
    `max(C * (F + 1), F + 1 + (C - 1) * N) - 1` with `C = context_length - 2`
    and N, F the longest tokens in bytes without and with `</w>` (2,396
    bytes for OpenAI's vocabulary): any longer text has more than C tokens,
    so a caption whose tokens fit is never cut. The merge loop then merges
    at once every pair that BPE's own order is sure to merge before anything
    near it changes, a handful of steps even for one 2,396-byte word. On
    Python strings, ftfy runs only on the leading segments (lines, or 8,192
    characters of a longer line) that can reach the ids.

    Args:
        vocabulary: dict `{token: id}` or the path of a `vocab.json`.
        merges: list of `"a b"` merge rules or the path of a `merges.txt`.
        context_length: int. Width of the output (77 in the paper).

    Example:
    >>> tokenizer = CLIPTokenizer.from_openai()
    >>> np.asarray(tokenizer(["hello world"]))[0, :5].tolist()
    [49406, 3306, 1002, 49407, 0]
    """

    def __init__(self, vocabulary=None, merges=None, context_length=77, **kwargs):
        if context_length < 2:
            raise ValueError(
                f"context_length must leave room for the start and end tokens "
                f"(>= 2), got {context_length}."
            )
        self._add_special_token(bpe_vocabulary.START_OF_TEXT, "start_token")
        self._add_special_token(bpe_vocabulary.END_OF_TEXT, "end_token")
        self.pad_token_id = 0
        kwargs.pop("sequence_length", None)
        kwargs.pop("unsplittable_tokens", None)
        super().__init__(
            vocabulary=vocabulary,
            merges=merges,
            sequence_length=context_length,
            unsplittable_tokens=[],
            _allow_python_workflow=False,
            **kwargs,
        )
        self.context_length = context_length
        # One graph for eager calls too: run eagerly, the BPE loop would be
        # re-traced at every merge step.
        self._tokenize_batch = tf.function(
            self._tokenize_graph,
            input_signature=[tf.TensorSpec([None], tf.string)],
            reduce_retracing=True,
        )

    @classmethod
    def from_openai(cls, path=None, context_length=77):
        """OpenAI's vocabulary, from `path` or an installed package shipping it."""
        vocabulary, merges = bpe_vocabulary.load_openai_vocabulary(path)
        return cls(vocabulary, merges, context_length=context_length)

    @classmethod
    def from_hf(cls, vocabulary_path, merges_path, context_length=77):
        """A Hugging Face CLIP tokenizer's `vocab.json` and `merges.txt`."""
        vocabulary, merges = bpe_vocabulary.load_hf_vocabulary(
            vocabulary_path, merges_path
        )
        return cls(vocabulary, merges, context_length=context_length)

    @classmethod
    def from_preset(cls, preset):
        """The tokenizer of a preset directory.

        A directory (as `keras-clip convert`, `train` or `demo` write it)
        holds `vocab.json` and `merges.txt`, and `preprocessing.json` with
        the context length. The paper presets' architectures (`"ViT-B/32"`,
        …) use OpenAI's vocabulary: `CLIPTokenizer.from_openai(
        context_length=model.context_length)`.
        """
        if not files.isdir(preset):
            raise ValueError(
                f"{preset!r} is not a directory with vocab.json and merges.txt. For a "
                "preset architecture's OpenAI tokenizer use "
                "CLIPTokenizer.from_openai(context_length=model.context_length)."
            )
        from keras_clip.data.tokenizer_spec import load_tokenizer

        return load_tokenizer(preset)  # its preprocessing.json gives the context length

    def save_vocabulary(self, directory):
        """Writes `vocab.json` and `merges.txt` (Hugging Face's layout) for `from_hf`."""
        files.makedirs(directory)
        with files.open(files.join(directory, "vocab.json"), "w") as file:
            json.dump(dict(self.vocabulary), file, ensure_ascii=False)
        with files.open(files.join(directory, "merges.txt"), "w") as file:
            file.write("#version: 0.2\n" + "\n".join(self.merges) + "\n")

    @classmethod
    def train(cls, texts, vocabulary_size, context_length=77, min_frequency=2):
        """A new byte-level BPE vocabulary learned from captions.

        For training from scratch in another language or domain; see
        `bpe_vocabulary.train_bpe_vocabulary`.
        """
        vocabulary, merges = bpe_vocabulary.train_bpe_vocabulary(
            texts, vocabulary_size, min_frequency
        )
        return cls(vocabulary, merges, context_length=context_length)

    @property
    def max_text_bytes(self):
        """Bytes of cleaned text that can reach the ids; the rest is cut."""
        nonfinal, final = self._token_bytes
        tokens = self.context_length - 2
        return max(tokens * (final + 1), final + 1 + (tokens - 1) * nonfinal) - 1

    def set_vocabulary_and_merges(self, vocabulary, merges):
        super().set_vocabulary_and_merges(vocabulary, merges)
        if self.vocabulary is not None:
            missing = [s for s in bpe_vocabulary.base_symbols() if s not in self.vocabulary]
            if missing:
                raise ValueError(
                    f"The vocabulary lacks {len(missing)} of the 512 byte "
                    f"symbols a byte-level BPE needs (e.g. {missing[:3]}); "
                    f"some text would have no ids."
                )
            self._set_merge_tables()

    def tokenize(self, inputs):
        self._check_vocabulary()
        if isinstance(inputs, str):
            inputs = self._clean(inputs)
        elif isinstance(inputs, (list, tuple)):
            if not all(isinstance(text, (str, bytes)) for text in inputs):
                raise ValueError(
                    "CLIPTokenizer takes a string or a 1-D batch of strings, got "
                    f"a list holding {sorted({type(t).__name__ for t in inputs})}."
                )
            inputs = [self._clean(_as_text(text)) for text in inputs]
        elif isinstance(inputs, np.ndarray) and inputs.dtype.kind in "OUS":
            cleaned = [self._clean(_as_text(text)) for text in inputs.ravel()]
            inputs = np.array(cleaned, dtype=object).reshape(inputs.shape)
        texts = tf.convert_to_tensor(inputs, tf.string)
        if texts.shape.rank not in (0, 1):
            raise ValueError(
                f"CLIPTokenizer takes a string or a 1-D batch of strings, got "
                f"shape {texts.shape}."
            )
        self._maybe_initialized_tf()
        flat = tf.reshape(texts, [-1])  # (N,)
        if tf.executing_eagerly() and not tf.inside_function():
            # The merge loop's tensors grow with a call's bytes: bounded
            # chunks bound the memory and latency of one call.
            chunks = [
                self._tokenize_batch(flat[i : i + EAGER_CHUNK]).numpy()
                for i in range(0, max(len(flat), 1), EAGER_CHUNK)
            ]
            ids = np.concatenate(chunks)[: len(flat)]
            return keras.ops.convert_to_tensor(ids[0] if texts.shape.rank == 0 else ids)
        ids = self._tokenize_batch(flat)  # (N, context)
        return ids[0] if texts.shape.rank == 0 else ids

    def _clean(self, text):
        """`clean_text` of as much of `text` as can reach the ids.

        Once the cleaned text holds more than `max_text_bytes` characters
        besides whitespace runs, it holds more tokens than fit (lowercasing
        never drops a character), so the rest cannot change the ids.
        """
        return clean_text(text, enough=self.max_text_bytes)

    def _tokenize_graph(self, texts):
        """`(N,)` strings → `(N, context_length)` int32 ids."""
        texts = lowercase(self._leading_text(texts))
        # Cut to the characters that start within max_text_bytes (no caption
        # whose tokens fit is longer), and to the first context_length - 2
        # pieces: every piece gives a token. Both cuts come before the merge
        # loop, so they bound its work.
        kept = tf.strings.length(
            tf.strings.substr(texts, 0, self.max_text_bytes), unit="UTF8_CHAR"
        )  # (N,)
        texts = tf.strings.substr(texts, tf.zeros_like(kept), kept, unit="UTF8_CHAR")
        words = tf_text.regex_split(texts, " |" + PIECES, PIECES)  # (N, words)
        words = words[:, : self.context_length - 2]
        word_ids = self._encode_words(words.flat_values)  # (all words, tokens)
        ids = tf.RaggedTensor.from_row_splits(
            word_ids.flat_values, tf.gather(word_ids.row_splits, words.row_splits)
        )  # (N, tokens)
        ids = ids[:, : self.context_length - 2]
        batch = tf.shape(texts)[:1]
        start = tf.fill(tf.concat([batch, [1]], 0), self.start_token_id)
        end = tf.fill(tf.concat([batch, [1]], 0), self.end_token_id)
        ids = tf.concat([start, ids, end], axis=1)
        ids = ids.to_tensor(self.pad_token_id, shape=[None, self.context_length])
        return tf.cast(ids, tf.int32)

    def _leading_text(self, texts):
        """`(N,)` texts with whitespace collapsed and stripped, cut to what reaches the ids.

        Collapsing (and later lowercasing) a megabyte costs tens of ms, so it
        runs on the first `length` characters, doubled until the collapsed
        prefix is the whole text or has more than max_text_bytes characters
        after stripping (lowercasing never drops one): then the text has more
        tokens than fit. A caption whose tokens fit is never cut here.
        """
        zeros = tf.zeros(tf.shape(texts), tf.int32)  # (N,)

        def collapse(length):
            head = tf.strings.substr(texts, zeros, length, unit="UTF8_CHAR")
            whole = tf.strings.length(head) >= tf.strings.length(texts)
            return length, tf.strings.regex_replace(head, WHITESPACE, " "), whole

        def growing(length, head, whole):
            characters = tf.strings.length(head, unit="UTF8_CHAR")
            return ~whole & (characters <= self.max_text_bytes + 2)

        _, head, _ = tf.while_loop(
            lambda *state: tf.reduce_any(growing(*state)),
            lambda *state: collapse(tf.where(growing(*state), 2 * state[0], state[0])),
            collapse(zeros + 2 * self.max_text_bytes),
        )
        return tf.strings.strip(head)

    def _encode_words(self, words):
        """`(W,)` pre-split words → `(W, tokens)` ragged BPE ids."""
        symbols = self.byte2unicode.lookup(tf.strings.bytes_split(words))
        # The last symbol of every word carries the end-of-word mark.
        last = symbols.row_limits() - 1
        flat = tf.tensor_scatter_nd_update(
            symbols.flat_values,
            last[:, None],
            tf.strings.join([tf.gather(symbols.flat_values, last), "</w>"]),
        )
        symbols = symbols.with_flat_values(flat)  # (W, bytes)
        # A word whose whole form is a token needs no merging: BPE replays
        # the training merges in order, and a token spanning a word with its
        # end mark can only have come from that word, so the merges reach it.
        whole_ids = self.token_to_id_map.lookup(tf.strings.reduce_join(symbols, axis=1))
        is_whole = whole_ids >= 0
        positions = tf.range(tf.shape(words)[0])
        split_positions = tf.boolean_mask(positions, ~is_whole)
        rows = tf.concat(
            [
                tf.RaggedTensor.from_tensor(tf.boolean_mask(whole_ids, is_whole)[:, None]),
                self._merge_words(tf.boolean_mask(words, ~is_whole)),
            ],
            axis=0,
        )
        order = tf.concat([tf.boolean_mask(positions, is_whole), split_positions], 0)
        return tf.gather(rows, tf.math.invert_permutation(order))  # (W, tokens)

    def detokenize(self, inputs):
        """Ids → text: framing and padding dropped, word ends become spaces."""
        self._maybe_initialized_tf()
        ids = tf.convert_to_tensor(keras.ops.convert_to_numpy(inputs), tf.int32)
        keep = (ids != self.start_token_id) & (ids != self.end_token_id)
        keep &= ids != self.pad_token_id
        tokens = self.id_to_token_map.lookup(tf.ragged.boolean_mask(ids, keep))
        symbols = tf.strings.unicode_split(
            tf.strings.reduce_join(tokens, axis=-1), "UTF-8"
        )
        text = tf.strings.reduce_join(self.unicode2byte.lookup(symbols), axis=-1)
        text = tf.strings.strip(tf.strings.regex_replace(text, "</w>", " "))
        return [t.decode("utf-8", "replace") for t in np.ravel(text.numpy())]

    def get_config(self):
        config = super().get_config()
        for key in ("sequence_length", "add_prefix_space", "unsplittable_tokens"):
            config.pop(key, None)
        config["context_length"] = self.context_length
        return config


def _as_text(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
