"""CLIP's contrastive loss, written with `keras.ops` only."""

from keras_clip.losses.contrastive_loss import contrastive_logits
from keras_clip.losses.contrastive_loss import contrastive_loss
from keras_clip.losses.contrastive_loss import top1_hits
from keras_clip.losses.cross_replica import gather_across_replicas

__all__ = [
    "contrastive_logits",
    "contrastive_loss",
    "top1_hits",
    "gather_across_replicas",
]
