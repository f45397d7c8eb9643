"""keras_clip: CLIP (Radford et al., 2021) for Keras 3 on TensorFlow, JAX and PyTorch.

Importing the package registers every layer and model, and the CLIPAdamW
optimizer saved with trained models, with Keras, so `keras.saving.load_model`
finds them. Choose the backend with the
`KERAS_BACKEND` environment variable before the first import.
"""

from keras_clip.models.clip_model import CLIPModel
from keras_clip.models.loading import load_model
from keras_clip.training.clip_adamw import CLIPAdamW

__version__ = "0.1.0"
__all__ = ["CLIPAdamW", "CLIPModel", "CLIPTokenizer", "load_model"]


def __getattr__(name):
    # The tokenizer runs on TensorFlow; load it on first use so the model
    # alone never imports TensorFlow on the JAX or PyTorch backends.
    if name == "CLIPTokenizer":
        from keras_clip.data.clip_tokenizer import CLIPTokenizer

        return CLIPTokenizer
    raise AttributeError(f"module 'keras_clip' has no attribute {name!r}")
