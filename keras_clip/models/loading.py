"""`load_model`: any saved keras_clip model, by its path."""

import importlib
import os
import zipfile

import keras

MODEL_FILE = "model.keras"


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
    """
    import keras_clip

    for module in keras_clip.REGISTERING_MODULES:  # what saved files name
        importlib.import_module(module)

    path = os.fspath(path)
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, MODEL_FILE)):
            raise FileNotFoundError(
                f"{path!r} is a directory without {MODEL_FILE}: not a keras_clip "
                "preset directory.")
        path = os.path.join(path, MODEL_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No model file at {path!r}.")
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path!r} is not a .keras model (a .keras file is a zip archive; this "
            "one is damaged or something else).")
    try:
        model = keras.saving.load_model(path, compile=compile)
    except (zipfile.BadZipFile, KeyError, EOFError) as error:
        raise ValueError(f"{path!r} is a damaged .keras file ({error}).") from None
    except TypeError as error:  # Keras: "Could not locate class ..." of another package
        raise ValueError(f"{path!r} is not a keras_clip model ({error}).") from None
    from keras_clip.models.clip_model import CLIPModel

    if not isinstance(model, CLIPModel):
        raise ValueError(f"{path!r} holds a {type(model).__name__}, not a keras_clip "
                         "CLIPModel.")
    return model
