"""Checkpoints of OpenAI's CLIP, OpenCLIP and Hugging Face → keras_clip models."""

from keras_clip.convert.checkpoint_files import CheckpointError, read_checkpoint
from keras_clip.convert.converter import (
    ConversionError,
    convert_checkpoint,
    load_weights,
    save_converted,
)
from keras_clip.models.resolution import interpolate_positions, with_image_size

__all__ = [
    "CheckpointError",
    "ConversionError",
    "convert_checkpoint",
    "interpolate_positions",
    "load_weights",
    "read_checkpoint",
    "save_converted",
    "with_image_size",
]
