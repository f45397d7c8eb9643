"""CLIP's training objectives, written with `keras.ops` only."""

from keras_clip.losses.contrastive_loss import (
    contrastive_logits,
    contrastive_loss,
    scaled_logits,
    top1_hits,
)
from keras_clip.losses.contrastive_objective import ContrastiveObjective
from keras_clip.losses.cross_replica import gather_across_replicas
from keras_clip.losses.objective import Objective
from keras_clip.losses.objectives import OBJECTIVES, get_objective
from keras_clip.losses.sigmoid_loss import sigmoid_loss
from keras_clip.losses.sigmoid_objective import SigmoidObjective

__all__ = [
    "ContrastiveObjective",
    "OBJECTIVES",
    "Objective",
    "SigmoidObjective",
    "contrastive_logits",
    "contrastive_loss",
    "gather_across_replicas",
    "get_objective",
    "scaled_logits",
    "sigmoid_loss",
    "top1_hits",
]
