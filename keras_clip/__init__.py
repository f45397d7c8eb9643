"""keras_clip: CLIP (Radford et al., 2021) for Keras 3 on TensorFlow, JAX and PyTorch.

`import keras_clip` before Keras is cheap: it loads neither Keras nor
TensorFlow, so the `keras-clip` command answers `--help` at once, and each
public name is loaded on first use. Imported after Keras, it registers its
layers, models and the CLIPAdamW optimizer at once (Keras is there already),
so `import keras, keras_clip` then `keras.saving.load_model(path)` works.
`keras_clip.load_model(path)` works in any order. Choose the backend with
the `KERAS_BACKEND` environment variable before the first use.
"""

import importlib
import sys

from keras_clip.lazy_exports import lazy_exports

__version__ = "0.1.0"
_PUBLIC = {
    "CLIPAdamW": "keras_clip.training.clip_adamw",
    "CLIPModel": "keras_clip.models.clip_model",
    "CLIPTokenizer": "keras_clip.data.clip_tokenizer",  # TensorFlow: loaded only if used
    "SigLIPTokenizer": "keras_clip.data.siglip_tokenizer",
    "load_model": "keras_clip.loading",
    "load_tokenizer": "keras_clip.data.tokenizer_spec",
}
__all__ = sorted(_PUBLIC)
__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC)

# What saved models name: the towers, their layers, CLIPModel, CLIPAdamW
# (the list keras_clip.loading imports).
REGISTERING_MODULES = ("keras_clip.models", "keras_clip.training.clip_adamw")
if "keras" in sys.modules:
    for _module in REGISTERING_MODULES:
        importlib.import_module(_module)
