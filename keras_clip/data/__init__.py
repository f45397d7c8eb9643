"""Data: the tokenizer, vocabularies, and synthetic pairs (TensorFlow allowed)."""

from keras_clip.data.clip_tokenizer import CLIPTokenizer
from keras_clip.data.synthetic_pairs import synthetic_pairs

__all__ = [
    "CLIPTokenizer",
    "synthetic_pairs",
]
