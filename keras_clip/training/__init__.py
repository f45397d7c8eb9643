"""Training: the config, the paper's recipe, distribution, checkpoints, `train()`."""

from keras_clip.lazy_exports import lazy_exports

_PUBLIC = {
    "CLIPAdamW": "keras_clip.training.clip_adamw",
    "TrainConfig": "keras_clip.training.config",
    "TrainResult": "keras_clip.training.trainer",
    "load_config": "keras_clip.training.config",
    "lock_tower": "keras_clip.training.fine_tuning",
    "train": "keras_clip.training.trainer",
    "wise_ft": "keras_clip.training.fine_tuning",
}
__all__ = sorted(_PUBLIC)
__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC)
