"""The preprocessing record: what a model's inputs must look like.

Saved with every model (in `CLIPModel`'s config) and beside every preset
directory's `model.keras` (as `preprocessing.json`); the data pipeline,
export, evaluation and the demo read it from the model instead of assuming
CLIP's constants. Any part of keras_clip may import this module: it
imports only `keras_clip.files`.
"""

import dataclasses
import json
import math

from keras_clip import files

# Per-channel RGB mean and std of the CLIP paper's training images ([0, 1]
# units), with which OpenAI's and most OpenCLIP checkpoints were trained.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

PREPROCESSING_FILE = "preprocessing.json"
#: What keras_clip's image pipelines implement (data/image_ops.py).
INTERPOLATIONS = ("bicubic",)
#: CLIP's (the shorter side to the size, then the centre square) and
#: SigLIP's (the whole image to the square, aspect ratio not kept).
RESIZE_MODES = ("shortest_side_then_center_crop", "squash")
# CLIPTokenizer's padding (and keras_clip's own tokenizers'), and SigLIPTokenizer's.
PAD_IDS = (0, 1)
# Spelling of `resize` in preprocessing.json files written before the record.
_OLD_RESIZE_NAMES = {"shortest_side_bicubic_then_center_crop": "shortest_side_then_center_crop"}


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """Image size and normalisation, resize rule, context length and pad id.

    Evaluation resizes the shorter side to `image_size` (`interpolation`,
    antialiased as PIL does) and centre-crops, or with `resize="squash"`
    (SigLIP's) resizes the whole image to the square; training takes a
    random resized crop either way. Pixels in `[0, 1]` are then normalised as
    `(x - mean) / std` per RGB channel; token rows are `context_length`
    wide, padded with `pad_id`.

    Example:
    >>> record = Preprocessing(image_size=224, context_length=77)
    >>> record.mean == CLIP_MEAN, record.to_dict()["resize"]
    (True, 'shortest_side_then_center_crop')
    """

    image_size: int
    context_length: int
    mean: tuple = CLIP_MEAN
    std: tuple = CLIP_STD
    interpolation: str = "bicubic"
    resize: str = RESIZE_MODES[0]
    pad_id: int = 0

    def __post_init__(self):
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        object.__setattr__(self, "resize", _OLD_RESIZE_NAMES.get(self.resize, self.resize))
        problems = list(self._problems())
        if problems:
            raise ValueError("Invalid preprocessing record: " + "; ".join(problems) + ".")

    def _problems(self):
        for name in ("image_size", "context_length"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                yield f"{name} must be a positive integer, got {value!r}"
        for name in ("mean", "std"):
            values = getattr(self, name)
            if len(values) != 3 or not all(math.isfinite(v) for v in values):
                yield f"{name} must be 3 finite numbers (R, G, B), got {list(values)}"
        if len(self.std) == 3 and not all(v > 0 for v in self.std):
            yield f"std must be positive, got {list(self.std)}"
        if self.interpolation not in INTERPOLATIONS:
            yield (f"interpolation {self.interpolation!r} is not implemented here "
                   f"(keras_clip resizes with: {', '.join(INTERPOLATIONS)})")
        if self.resize not in RESIZE_MODES:
            yield (f"resize {self.resize!r} is not implemented here "
                   f"(keras_clip resizes with: {', '.join(RESIZE_MODES)})")
        if self.pad_id not in PAD_IDS:
            yield (f"pad_id {self.pad_id!r} is not implemented here (keras_clip's "
                   f"tokenizers pad with {' or '.join(map(str, PAD_IDS))})")

    @property
    def normalization(self):
        """`{"mean", "std"}`, as the image ops take them."""
        return {"mean": self.mean, "std": self.std}

    @property
    def evaluation_options(self):
        """`image_ops.preprocess_for_eval`'s keywords: normalisation and resize."""
        return {**self.normalization, "resize": self.resize}

    def normalize(self, pixels):
        """`(…, 3)` pixels in `[0, 255]`, already at `image_size` → float32 inputs."""
        import numpy as np

        pixels = np.asarray(pixels, np.float32) / 255.0
        return ((pixels - np.array(self.mean, np.float32))
                / np.array(self.std, np.float32)).astype(np.float32)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        record = dataclasses.asdict(self)
        record["mean"], record["std"] = list(self.mean), list(self.std)
        return record

    @classmethod
    def from_dict(cls, record):
        """From `to_dict`'s output; unknown keys are an error that names them."""
        fields = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(record) - fields)
        if unknown:
            raise ValueError(f"Invalid preprocessing record: unknown keys {unknown}; "
                             f"known: {sorted(fields)}.")
        return cls(**record)

    def save(self, directory):
        """Writes `directory/preprocessing.json`."""
        with files.open(files.join(directory, PREPROCESSING_FILE), "w") as file:
            json.dump(self.to_dict(), file, indent=2)

    @classmethod
    def load(cls, directory):
        """`directory/preprocessing.json`, or None if there is none."""
        path = files.join(directory, PREPROCESSING_FILE)
        if not files.isfile(path):
            return None
        try:
            with files.open(path) as file:
                record = json.load(file)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{path} is not a readable JSON record ({error}).") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path} holds a JSON {type(record).__name__}, not an object.")
        try:
            return cls.from_dict(record)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{path}: {error}") from None
