"""`read_model`: a saved keras_clip model file or preset directory, checked."""

import os
import zipfile

import keras

from keras_clip import files
from keras_clip.preprocessing import Preprocessing

MODEL_FILE = "model.keras"


def read_model(path, compile=True):
    """Loads a saved `CLIPModel`, saying what is wrong with a path that is none.

    `path` is a `.keras` file or a preset directory holding `model.keras`;
    a directory's `preprocessing.json`, if any, becomes the model's
    `preprocessing` record (directories converted before models carried
    one hold their checkpoint's constants only there). Classes a file names
    must be registered: `keras_clip.load_model` imports them all first;
    towers and layers are registered once `CLIPModel` is imported, the
    optimizer only by `keras_clip.training`.
    """
    path = os.fspath(path)
    record = None
    if files.isdir(path):
        if not files.isfile(files.join(path, MODEL_FILE)):
            raise FileNotFoundError(
                f"{path!r} is a directory without {MODEL_FILE}: not a keras_clip "
                "preset directory.")
        record = Preprocessing.load(path)
        path = files.join(path, MODEL_FILE)
    if not files.isfile(path):
        raise FileNotFoundError(f"No model file at {path!r}.")
    with files.open(path, "rb") as file:
        is_zip = zipfile.is_zipfile(file)
    if not is_zip:
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
    if record is not None:
        model.preprocessing = record
    return model
