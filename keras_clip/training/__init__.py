"""Training: the config, the paper's recipe, distribution, checkpoints, `train()`."""

from keras_clip.training.clip_adamw import CLIPAdamW
from keras_clip.training.config import TrainConfig, load_config
from keras_clip.training.fine_tuning import lock_tower, wise_ft
from keras_clip.training.trainer import TrainResult, train

__all__ = ["CLIPAdamW", "TrainConfig", "TrainResult", "load_config", "lock_tower", "train",
           "wise_ft"]
