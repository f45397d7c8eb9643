"""`keras_clip.load_model`: any saved keras_clip model, by its path."""

import importlib

import keras_clip
from keras_clip.models.loading import read_model


def load_model(path, compile=True):
    """Loads a saved `CLIPModel` in any process, on any backend.

    Args:
        path: a `.keras` file (`model.fit`'s model saved with `model.save`,
            `keras-clip train`'s `model.keras` or `wise_ft.keras`, or one of
            its `checkpoints/step-N.keras`), or a preset directory holding
            `model.keras` (what `keras-clip convert` and `demo` write).
        compile: also restore the optimizer and its state (to train on);
            False loads the weights for inference only.

    It needs nothing imported first (it loads the modules that register
    keras_clip's layers, models and optimizer), and says what is wrong with
    a path that is no model. `keras.saving.load_model` works too once
    `keras_clip` is imported after Keras.

    Example:
    >>> model = keras_clip.load_model("runs/clip/model.keras")
    >>> model.image_size, model.context_length
    (32, 16)
    """
    for module in keras_clip.REGISTERING_MODULES:  # what saved files name
        importlib.import_module(module)
    return read_model(path, compile=compile)
