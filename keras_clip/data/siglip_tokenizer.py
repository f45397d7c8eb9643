"""SigLIPTokenizer: SigLIP's SentencePiece tokenizer, in one TensorFlow graph."""

import string

import keras
import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

from keras_clip import files
from keras_clip.data.host_tensorflow import keep_tensorflow_on_the_host
from keras_clip.data.text_case import lowercase

keep_tensorflow_on_the_host()  # before TensorFlow's first op

MODEL_FILE = "spiece.model"  # the name Hugging Face's SigLIP directories use
WORD_START = "\u2581"  # SentencePiece's "▁", which starts a word
# Python's `\s` (and str.strip's whitespace) for str patterns, spelled for
# RE2, whose `\s` is ASCII only (tests check it against every code point).
WHITESPACE = (r"[\t\n\x{0b}\f\r\x{1c}-\x{1f} \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}"
              r"\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]")
PUNCTUATION = "[" + "".join("\\" + character for character in string.punctuation) + "]"
# Characters of canonical text read per word piece of the longest kind;
# the text kept is this many times the context's longest pieces.
TEXT_MARGIN = 2


class SigLIPTokenizer(tf.Module):
    """Strings → `(N, context_length)` int32 ids, as SigLIP's released tokenizer.

    The ids equal Hugging Face's `SiglipTokenizer` called with
    `padding="max_length", truncation=True` (tested on 1,000 varied
    captions): the text is lowercased, ASCII punctuation removed,
    whitespace runs collapsed to one space and the ends stripped; the
    SentencePiece model encodes it as one text starting a word; ids past
    `context_length - 1` are cut, `</s>` closes the row and `</s>` pads it.
    One TensorFlow computation serves eager calls, `tf.data` maps and
    exported graphs. A unigram model without byte fallback (SigLIP's) runs
    on tf-text's `FastSentencepieceTokenizer`, which splits ties (runs of
    one letter, numbers with zeros) as the `sentencepiece` library does;
    tf-text's `SentencepieceTokenizer`, used for other models, may split
    those differently. Lowercasing is the same in every locale (`text_case.lowercase`).

    Where it differs, on purpose or by TensorFlow: the literal strings
    `</s>` and `<unk>` inside a caption are text here (Hugging Face turns
    them into those ids, so a caption could end itself early); the 40
    letters Unicode 14 added (Vithkuqi, Latin Extended-D's newest) stay
    uppercase, since TensorFlow's ICU predates them. The first
    `max_text_chars` characters of the canonical text are encoded first,
    which bounds the cost of a huge caption; a row they leave short of
    `context_length` ids (characters that give no piece) is encoded whole.

    Args:
        proto: the SentencePiece model: a path (`spiece.model`) or its bytes.
        context_length: int. Width of the output (64 in the released models).

    Example:
    >>> tokenizer = SigLIPTokenizer("runs/siglip/spiece.model", context_length=8)
    >>> ids = np.asarray(tokenizer(["A photo of a cat!"]))
    >>> ids.shape, ids[0, -1] == tokenizer.end_token_id == tokenizer.pad_token_id
    ((1, 8), True)
    """

    def __init__(self, proto, context_length=64, name=None):
        super().__init__(name=name)
        if isinstance(proto, str):
            if not files.isfile(proto):
                raise FileNotFoundError(f"No SentencePiece model at {proto!r}.")
            with files.open(proto, "rb") as file:
                proto = file.read()
        if not isinstance(proto, bytes):
            raise TypeError(f"proto must be a path or bytes, got {type(proto).__name__}.")
        if context_length < 1:
            raise ValueError(f"context_length must leave room for </s> (>= 1), got "
                             f"{context_length}.")
        model = _parse_model(proto)
        self.proto = proto
        self.context_length = int(context_length)
        self._vocabulary = [piece.piece for piece in model.pieces]
        unigram = model.trainer_spec.model_type == model.trainer_spec.UNIGRAM
        if unigram and not model.trainer_spec.byte_fallback:
            self._sentence_piece = tf_text.FastSentencepieceTokenizer(model=proto)
        else:
            self._sentence_piece = tf_text.SentencepieceTokenizer(model=proto,
                                                                  out_type=tf.int32)
        ids = {piece: index for index, piece in enumerate(self._vocabulary)}
        if "</s>" not in ids:
            raise ValueError("The SentencePiece model has no </s> piece, which SigLIP's "
                             "tokenizer closes and pads rows with.")
        self.end_token_id = self.pad_token_id = ids["</s>"]
        # Hugging Face encodes `unk + text` and drops the unk's pieces, so
        # that the text starts a word whatever the model's dummy prefix.
        self._prefix = self._vocabulary[model.trainer_spec.unk_id]
        self._prefix_length = int(self._sentence_piece.tokenize([self._prefix]).row_lengths()[0])
        longest = max(len(piece) for piece in self._vocabulary)
        self.max_text_chars = TEXT_MARGIN * self.context_length * longest
        self._tokenize_batch = tf.function(
            self._tokenize_graph,
            input_signature=[tf.TensorSpec([None], tf.string)],
            reduce_retracing=True,
        )

    @classmethod
    def from_preset(cls, directory, context_length=64):
        """The tokenizer a directory's `spiece.model` holds."""
        return cls(files.join(directory, MODEL_FILE), context_length=context_length)

    def vocabulary_size(self):
        return len(self._vocabulary)

    def get_vocabulary(self):
        return list(self._vocabulary)

    def save_vocabulary(self, directory):
        """Writes `spiece.model` (Hugging Face's name) for `from_preset`."""
        files.makedirs(directory)
        with files.open(files.join(directory, MODEL_FILE), "wb") as file:
            file.write(self.proto)

    def __call__(self, inputs):
        return self.tokenize(inputs)

    def tokenize(self, inputs):
        if isinstance(inputs, (list, tuple)):
            if not all(isinstance(text, (str, bytes)) for text in inputs):
                raise ValueError(
                    "SigLIPTokenizer takes a string or a 1-D batch of strings, got a list "
                    f"holding {sorted({type(t).__name__ for t in inputs})}.")
        texts = tf.convert_to_tensor(inputs, tf.string)
        if texts.shape.rank not in (0, 1):
            raise ValueError(f"SigLIPTokenizer takes a string or a 1-D batch of strings, "
                             f"got shape {texts.shape}.")
        ids = self._tokenize_batch(tf.reshape(texts, [-1]))  # (N, context)
        if tf.executing_eagerly() and not tf.inside_function():
            ids = keras.ops.convert_to_tensor(np.asarray(ids))
        return ids[0] if texts.shape.rank == 0 else ids

    def canonical_text(self, texts):
        """`(N,)` strings → what SentencePiece encodes, as Hugging Face prepares it."""
        texts = WORD_START + tf.strings.regex_replace(texts, WORD_START, " ")
        texts = lowercase(texts)
        texts = tf.strings.regex_replace(texts, PUNCTUATION, "")
        texts = tf.strings.regex_replace(texts, WHITESPACE + "+", " ")
        return tf.strings.regex_replace(texts, "^ | $", "")  # runs are single spaces now

    def _encode(self, texts):
        """Canonical texts → `(N, context_length - 1)` ids, `</s>`-padded, and their counts."""
        ids = self._sentence_piece.tokenize(self._prefix + texts)  # (N, pieces)
        ids = ids[:, self._prefix_length:][:, : self.context_length - 1]
        dense = ids.to_tensor(self.pad_token_id, shape=[None, self.context_length - 1])
        return tf.cast(dense, tf.int32), tf.cast(ids.row_lengths(), tf.int32)

    def _tokenize_graph(self, texts):
        texts = self.canonical_text(texts)
        kept = tf.strings.substr(texts, 0, self.max_text_chars, unit="UTF8_CHAR")
        ids, counts = self._encode(kept)
        # Rows the cut left short (characters that give no piece): whole.
        short = (counts < self.context_length - 1) & (
            tf.strings.length(kept) < tf.strings.length(texts))
        ids = tf.cond(tf.reduce_any(short),
                      lambda: tf.where(short[:, None], self._encode(tf.where(short, texts, ""))[0],
                                       ids),
                      lambda: ids)
        # Padding is </s>, the closing id: the last column closes full rows.
        return tf.concat([ids, tf.fill(tf.stack([tf.shape(ids)[0], 1]), self.end_token_id)],
                         axis=1)


def _parse_model(proto):
    """The `ModelProto` of a SentencePiece model's bytes, or a one-line error."""
    from google.protobuf.message import DecodeError
    from sentencepiece import sentencepiece_model_pb2

    model = sentencepiece_model_pb2.ModelProto()
    try:
        model.ParseFromString(proto)
    except DecodeError as error:
        raise ValueError(f"Not a SentencePiece model ({error}).") from None
    if not model.pieces:
        raise ValueError("Not a SentencePiece model (it holds no pieces).")
    return model
