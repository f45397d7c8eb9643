"""Export: TF Serving SavedModels with preprocessing and tokenizer inside."""

from keras_clip.export.saved_model import export_saved_model

__all__ = ["export_saved_model"]
