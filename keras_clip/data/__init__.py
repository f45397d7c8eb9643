"""Data: synthetic pairs for demos and tests (tokenizer and TFRecords to come)."""

from keras_clip.data.synthetic_pairs import synthetic_pairs
