"""ContrastiveObjective: CLIP's softmax contrastive objective and temperature."""

import math

import keras
from keras import ops

from keras_clip.layers.logit_scale_constraint import LogitScaleConstraint
from keras_clip.losses.chunked_contrastive_loss import contrastive_loss_and_gradients
from keras_clip.losses.contrastive_loss import (
    contrastive_logits,
    contrastive_loss,
    scaled_logits,
    top1_hits,
)
from keras_clip.losses.cross_replica import gather_across_replicas, sum_across_replicas
from keras_clip.losses.objective import Objective


@keras.saving.register_keras_serializable(package="keras_clip")
class ContrastiveObjective(Objective):
    """The symmetric cross-entropy over `exp(logit_scale) · img @ txtᵀ` (CLIP).

    Each image must pick its caption among the batch's captions and each
    caption its image (Radford et al., 2021). Under a `tf.distribute`
    strategy the embeddings are gathered from every replica, so the
    negatives are the global batch. `logit_scale` is the learned log of
    the inverse temperature, started at `log(1 / 0.07)` and kept in
    `[0, log(100)]` after every update. Served probabilities are each
    image's softmax over the texts; the in-batch metrics are the top-1
    accuracies both ways.

    Args:
        logit_scale_init: float. Initial log logit scale.
        max_logit_scale: float. Upper bound of the log logit scale.

    Example:
    >>> objective = ContrastiveObjective()
    >>> weights = {"logit_scale": np.log(100.0)}
    >>> embeddings = np.eye(2, 4, dtype="float32")
    >>> logits = objective.logits(weights, embeddings, embeddings)
    >>> np.round(keras.ops.convert_to_numpy(logits), 3)
    array([[100.,   0.],
           [  0., 100.]], dtype=float32)
    """

    name = "contrastive"
    weight_names = ("logit_scale",)
    metric_names = ("image_to_text_accuracy", "text_to_image_accuracy")
    probability_kind = "softmax"

    def __init__(self, logit_scale_init=math.log(1 / 0.07), max_logit_scale=math.log(100.0)):
        self.logit_scale_init = logit_scale_init
        self.max_logit_scale = max_logit_scale

    def create_weights(self, model):
        logit_scale = model.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(self.logit_scale_init),
            constraint=LogitScaleConstraint(0.0, self.max_logit_scale),
            dtype="float32",
            name="logit_scale",
        )
        return {"logit_scale": logit_scale}

    def logits(self, weights, image_embeddings, text_embeddings):
        return scaled_logits(image_embeddings, text_embeddings, weights["logit_scale"])

    def probabilities(self, logits):
        return ops.softmax(logits, axis=-1)  # each image over the texts

    def loss(self, weights, image_embeddings, text_embeddings):
        all_image, all_text, row_offset, num_replicas = gather_across_replicas(
            image_embeddings, text_embeddings
        )
        logits_per_image, logits_per_text, labels = contrastive_logits(
            image_embeddings,
            text_embeddings,
            weights["logit_scale"],
            all_image,
            all_text,
            row_offset,
        )
        metrics = {
            "image_to_text_accuracy": top1_hits(logits_per_image, labels),
            "text_to_image_accuracy": top1_hits(logits_per_text, labels),
        }
        loss = contrastive_loss(logits_per_image, logits_per_text, labels)
        return loss, metrics, num_replicas

    def loss_and_gradients(self, weights, image_embeddings, text_embeddings):
        all_image, all_text, row_offset, num_replicas = gather_across_replicas(
            image_embeddings, text_embeddings
        )
        found = contrastive_loss_and_gradients(
            image_embeddings, text_embeddings, weights["logit_scale"], all_image, all_text,
            row_offset, loss_weight=1.0 / num_replicas,
        )
        # As keys, local rows also enter every other replica's loss.
        image_columns, text_columns = sum_across_replicas(
            found["image_columns"], found["text_columns"])
        rows, width = ops.shape(image_embeddings)
        gradients = {
            "image_embeddings": found["image_rows"]
            + ops.slice(image_columns, (row_offset, 0), (rows, width)),
            "text_embeddings": found["text_rows"]
            + ops.slice(text_columns, (row_offset, 0), (rows, width)),
            "logit_scale": found["logit_scale"],
        }
        metrics = {
            "image_to_text_accuracy": found["image_hits"],
            "text_to_image_accuracy": found["text_hits"],
        }
        return found["loss"], metrics, num_replicas, gradients

    def state(self, weights):
        # The scale itself (1 / temperature), as the paper reports it.
        return {"logit_scale": float(ops.convert_to_numpy(ops.exp(weights["logit_scale"])))}

    def get_config(self):
        return {
            "logit_scale_init": self.logit_scale_init,
            "max_logit_scale": self.max_logit_scale,
        }
