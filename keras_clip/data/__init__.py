"""Data: the tokenizer, vocabularies, and synthetic pairs (TensorFlow allowed)."""

from keras_clip.lazy_exports import lazy_exports

_PUBLIC = {
    "CLIPTokenizer": "keras_clip.data.clip_tokenizer",
    "SigLIPTokenizer": "keras_clip.data.siglip_tokenizer",
    "load_tokenizer": "keras_clip.data.tokenizer_spec",
    "synthetic_pairs": "keras_clip.data.synthetic_pairs",
}
__all__ = sorted(_PUBLIC)
__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC)
