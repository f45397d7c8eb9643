"""SigmoidObjective: SigLIP's pairwise sigmoid objective, its scale and its bias."""

import math

import keras
from keras import ops

from keras_clip.layers.logit_scale_constraint import LogitScaleConstraint
from keras_clip.losses import chunked_rows
from keras_clip.losses.contrastive_loss import contrastive_logits, scaled_logits, top1_hits
from keras_clip.losses.cross_replica import gather_across_replicas, sum_across_replicas
from keras_clip.losses.objective import Objective
from keras_clip.losses.sigmoid_loss import sigmoid_loss


@keras.saving.register_keras_serializable(package="keras_clip")
class SigmoidObjective(Objective):
    """Each image–text pair classified as matching or not, with a sigmoid (SigLIP).

    Logits are `exp(logit_scale) · img @ txtᵀ + logit_bias`; the loss is
    `−(1/N) Σ_ij log σ(z_ij · logit_ij)` over all `N × N` pairs of the
    global batch, `z` = +1 for an image's own caption and −1 for every
    other (Zhai et al., 2023). `logit_scale` starts at `log 10` and
    `logit_bias` at −10, the paper's values, so that the many negatives do
    not dominate the first steps. Each replica scores its images against
    the captions of every replica. Served probabilities are the
    elementwise sigmoid of the logits: each pair's own probability of
    matching, not a distribution over the texts. The in-batch metrics are
    the top-1 accuracies both ways, as for CLIP's objective.

    Args:
        logit_scale_init: float. Initial log logit scale.
        logit_bias_init: float. Initial logit bias.
        max_logit_scale: float or None. Upper bound of the log logit scale
            after every update (None: unbounded, as in the paper).

    Example:
    >>> objective = SigmoidObjective()
    >>> weights = {"logit_scale": np.log(10.0), "logit_bias": -10.0}
    >>> embeddings = np.eye(2, 4, dtype="float32")
    >>> logits = objective.logits(weights, embeddings, embeddings)
    >>> np.round(keras.ops.convert_to_numpy(logits), 3)
    array([[  0., -10.],
           [-10.,   0.]], dtype=float32)
    """

    name = "sigmoid"
    weight_names = ("logit_scale", "logit_bias")
    metric_names = ("image_to_text_accuracy", "text_to_image_accuracy")
    probability_kind = "sigmoid"

    def __init__(self, logit_scale_init=math.log(10.0), logit_bias_init=-10.0,
                 max_logit_scale=None):
        self.logit_scale_init = logit_scale_init
        self.logit_bias_init = logit_bias_init
        self.max_logit_scale = max_logit_scale

    def create_weights(self, model):
        constraint = None
        if self.max_logit_scale is not None:
            constraint = LogitScaleConstraint(0.0, self.max_logit_scale)
        logit_scale = model.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(self.logit_scale_init),
            constraint=constraint,
            dtype="float32",
            name="logit_scale",
        )
        logit_bias = model.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(self.logit_bias_init),
            dtype="float32",
            name="logit_bias",
        )
        return {"logit_scale": logit_scale, "logit_bias": logit_bias}

    def logits(self, weights, image_embeddings, text_embeddings):
        return scaled_logits(image_embeddings, text_embeddings, weights["logit_scale"],
                             weights["logit_bias"])

    def probabilities(self, logits):
        return ops.sigmoid(logits)  # each pair on its own

    def loss(self, weights, image_embeddings, text_embeddings):
        all_image, all_text, row_offset, num_replicas = gather_across_replicas(
            image_embeddings, text_embeddings
        )
        # Local images against every replica's captions (and the other way
        # for the text-to-image metric; the bias moves no argmax).
        logits_per_image, logits_per_text, labels = contrastive_logits(
            image_embeddings, text_embeddings, weights["logit_scale"], all_image, all_text,
            row_offset,
        )
        logits_per_image = logits_per_image + ops.cast(weights["logit_bias"], "float32")
        metrics = {
            "image_to_text_accuracy": top1_hits(logits_per_image, labels),
            "text_to_image_accuracy": top1_hits(logits_per_text, labels),
        }
        return sigmoid_loss(logits_per_image, labels), metrics, num_replicas

    def loss_and_gradients(self, weights, image_embeddings, text_embeddings, chunk_size=512):
        all_image, all_text, row_offset, num_replicas = gather_across_replicas(
            image_embeddings, text_embeddings
        )
        rows = ops.cast(ops.shape(image_embeddings)[0], "float32")
        found = chunked_rows.rows_loss_and_gradients(
            image_embeddings, all_text, weights["logit_scale"], row_offset,
            1.0 / (num_replicas * rows), chunk_size, chunked_rows.pairwise_sigmoid,
            logit_bias=weights["logit_bias"],
        )
        text_hits = chunked_rows.rows_loss_and_gradients(  # the metric only
            text_embeddings, all_image, weights["logit_scale"], row_offset, 0.0, chunk_size,
            row_loss=None,
        )["hits"]
        # Local captions are keys of every replica's images.
        (text_columns,) = sum_across_replicas(found["keys"])
        local_rows, width = ops.shape(text_embeddings)
        gradients = {
            "image_embeddings": found["queries"],
            "text_embeddings": ops.slice(text_columns, (row_offset, 0), (local_rows, width)),
            "logit_scale": found["logit_scale"],
            "logit_bias": found["logit_bias"],
        }
        metrics = {"image_to_text_accuracy": found["hits"], "text_to_image_accuracy": text_hits}
        return found["loss_sum"] / rows, metrics, num_replicas, gradients

    def state(self, weights):
        return {
            "logit_scale": float(ops.convert_to_numpy(ops.exp(weights["logit_scale"]))),
            "logit_bias": float(ops.convert_to_numpy(weights["logit_bias"])),
        }

    def get_config(self):
        return {
            "logit_scale_init": self.logit_scale_init,
            "logit_bias_init": self.logit_bias_init,
            "max_logit_scale": self.max_logit_scale,
        }
