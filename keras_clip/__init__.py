"""keras_clip: CLIP (Radford et al., 2021) for Keras 3 on TensorFlow, JAX and PyTorch.

Public names load on first use, so `import keras_clip` (and the `keras-clip`
command) can still choose the Keras backend, which Keras fixes at import.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "CLIPModel": "keras_clip.models.clip_model",
}


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'keras_clip' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_EXPORTS])
