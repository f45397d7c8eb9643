"""The objective contract: what `CLIPModel` and the serving module ask of a loss."""


class Objective:
    """Owns the logits, the loss, the served probabilities and in-batch metrics.

    `CLIPModel(image_encoder, text_encoder, objective=...)` holds one. The
    model creates the objective's weights (`create_weights`) and passes
    them back as a dict by name; its `similarity`, its `compute_loss` and
    the exported serving functions all go through the objective, so a new
    objective is one subclass plus an entry in `losses/objectives.py`.

    Subclasses set `name`, `weight_names` (the model weights
    `create_weights` adds, also the model's attribute names) and
    `metric_names` (the per-row values `loss` returns, averaged by the
    model's metrics) and `probability_kind`, and keep their constructor arguments in `get_config`.
    """

    name = None
    weight_names = ()
    metric_names = ()
    #: What `probabilities` are, as the serving functions report them:
    #: "softmax" (each image's distribution over the texts) or "sigmoid"
    #: (each pair's own probability of matching).
    probability_kind = None

    def create_weights(self, model):
        """Adds this objective's weights to `model`; returns them by name."""
        raise NotImplementedError

    def logits(self, weights, image_embeddings, text_embeddings):
        """`(B_images, B_texts)` float32 logits of unit-norm embeddings."""
        raise NotImplementedError

    def probabilities(self, logits):
        """What serving returns as `probabilities` for `(B_images, B_texts)` logits."""
        raise NotImplementedError

    def loss(self, weights, image_embeddings, text_embeddings):
        """`(loss, metrics, num_replicas)` for one replica's `(b, D)` embeddings.

        `loss` is a float32 scalar averaged over this replica's rows,
        `metrics` maps each of `metric_names` to `(b,)` per-row values, and
        `num_replicas` is how many replicas split the batch: the model
        divides its whole loss by it, so that the replicas' summed
        gradients are the global mean's.
        """
        raise NotImplementedError

    def loss_and_gradients(self, weights, image_embeddings, text_embeddings):
        """`(loss, metrics, num_replicas, gradients)`, never holding all the logits.

        What cached-gradient accumulation asks of an objective: `loss`,
        `metrics` and `num_replicas` as `loss` returns them, and
        `gradients`, a dict of the
        gradients of this replica's share of the global loss (`loss /
        num_replicas`) with respect to `"image_embeddings"`,
        `"text_embeddings"` (`(b, D)`, this replica's rows, with every
        replica's loss accounted for) and each of `weight_names`. Memory
        should grow linearly with the global batch.
        """
        raise NotImplementedError(
            f"The {self.name!r} objective has no cached-gradient form, which "
            "accumulation_steps > 1 needs.")

    def state(self, weights):
        """`{name: float}` worth logging while training (read from the device)."""
        return {}

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
