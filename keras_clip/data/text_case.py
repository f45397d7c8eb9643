"""`lowercase`: Python's `str.lower` inside a TensorFlow graph, in any locale."""

import tensorflow as tf

# ICU lowercases these by the process's locale (Turkish I → ı, Lithuanian
# Ì → i̇̀, ...): mapped first, as Python's str.lower maps them everywhere.
LOCALE_SENSITIVE = {character: character.lower() for character in "IJÌÍĨĮİ"}


def lowercase(texts):
    """`(N,)` UTF-8 strings lowered as Python's `str.lower` does, context rules too.

    `tf.strings.lower` follows ICU's default locale, which LANG and LC_ALL
    set: under `tr_TR` it lowers "I" to "ı", so the tokenizers' ids would
    depend on the machine. The letters ICU treats by locale are lowered
    beforehand. ICU also stops at NUL: the parts between NULs are lowered
    one by one. (The 40 letters Unicode 14 added stay as they are: ICU in
    TensorFlow predates them.)
    """
    for character, lowered in LOCALE_SENSITIVE.items():
        texts = tf.strings.regex_replace(texts, character, lowered)
    parts = tf.strings.split(texts, "\x00")  # (N, parts): lowered one by one
    parts = parts.with_flat_values(
        tf.strings.lower(parts.flat_values, encoding="utf-8") + "\x00")
    joined = tf.strings.reduce_join(parts, axis=-1)  # a NUL too many, at the end
    length = tf.strings.length(joined)
    return tf.strings.substr(joined, tf.zeros_like(length), length - 1)
