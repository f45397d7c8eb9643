"""Cached-gradient accumulation: one optimizer step over a batch too big to hold.

`CLIPModel(accumulation_steps=k)` splits each (per-replica) batch into `k`
micro-batches and takes one exact step over the whole batch, the GradCache
way (Gao et al., 2021):

1. embed every micro-batch, without keeping activations;
2. compute the loss over all the embeddings (gathered across replicas, so
   the negatives are the global batch) and its gradient with respect to
   each embedding and to the objective's weights, a chunk of rows at a time
   (`Objective.loss_and_gradients`);
3. re-run each micro-batch with gradients and back-propagate its cached
   embedding gradient, as the gradient of `Σ embeddings · cached`, summing
   the weights' gradients over the micro-batches; one optimizer update.

Activations are held for one micro-batch at a time, so memory follows the
micro-batch, not the batch; the price is one more forward pass. Between the
two passes the model's non-trainable state (BatchNorm statistics, random
seeds) is put back, so that the second pass sees what the first saw. Each
backend's step lives in its own module (`cached_gradients_{tensorflow,jax,
torch}.py`); what they share is here.
"""

import keras
from keras import ops

from keras_clip.losses.objective import Objective

EMBEDDINGS = ("image_embeddings", "text_embeddings")


def step_module():
    """This backend's `train_step(model, *arguments)` module."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        from keras_clip.models import cached_gradients_tensorflow as module
    elif backend == "jax":
        from keras_clip.models import cached_gradients_jax as module
    elif backend == "torch":
        from keras_clip.models import cached_gradients_torch as module
    else:
        raise ValueError(f"accumulation_steps is not supported on the {backend} backend.")
    return module


def check_accumulation_steps(steps):
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"accumulation_steps must be a positive integer, not {steps!r}.")


def check_objective(objective):
    """Raises unless `objective` has the chunked form of its loss's gradients."""
    if type(objective).loss_and_gradients is Objective.loss_and_gradients:
        raise ValueError(
            f"The {objective.name!r} objective ({type(objective).__name__}) has no "
            "cached-gradient form (Objective.loss_and_gradients), which "
            "accumulation_steps > 1 needs.")


def check_splits(batch_size, steps, shards=1):
    """Raises unless `batch_size` rows split into `shards × steps` equal parts."""
    if isinstance(batch_size, int) and batch_size % (shards * steps):
        split = f"{shards} device(s) × {steps}" if shards > 1 else f"{steps}"
        raise ValueError(
            f"A batch of {batch_size} examples does not split into {split} equal "
            f"micro-batches (accumulation_steps={steps}): use a batch size that is a "
            f"multiple of {shards * steps}, and whole batches (drop_remainder=True)."
        )


def split_micro_batches(inputs, steps, shards=1):
    """Each `(B, ...)` input as `(steps, B / steps, ...)` micro-batches.

    With `shards` data-parallel devices holding consecutive slices of the
    batch, micro-batch `i` takes the `i`-th part of every device's slice,
    so each device keeps its own rows.
    """

    def split(tensor):
        rest = tuple(ops.shape(tensor)[1:])
        tensor = ops.reshape(tensor, (shards, steps, -1, *rest))  # (S, k, m/S, ...)
        tensor = ops.swapaxes(tensor, 0, 1)  # (k, S, m/S, ...)
        return ops.reshape(tensor, (steps, -1, *rest))  # (k, m, ...)

    return keras.tree.map_structure(split, inputs)


def merge_micro_batches(outputs, shards=1):
    """The inverse of `split_micro_batches`: `(steps, m, ...)` → `(B, ...)`."""

    def merge(tensor):
        steps, rest = ops.shape(tensor)[0], tuple(ops.shape(tensor)[2:])
        tensor = ops.reshape(tensor, (steps, shards, -1, *rest))  # (k, S, m/S, ...)
        tensor = ops.swapaxes(tensor, 0, 1)  # (S, k, m/S, ...)
        return ops.reshape(tensor, (-1, *rest))  # (B, ...)

    return keras.tree.map_structure(merge, outputs)


def loss_and_cotangents(model, embeddings, steps, shards=1):
    """Step 2: the objective over all `(B, D)` embeddings, and each micro-batch's gradient.

    Returns `(loss, metrics, num_replicas, gradients, cotangents)`:
    `gradients` as `Objective.loss_and_gradients` gives them, `cotangents`
    the embeddings' part of them split like the inputs, `(steps, m, D)`.
    """
    loss, metrics, num_replicas, gradients = model.objective.loss_and_gradients(
        model.objective_weights, *(embeddings[name] for name in EMBEDDINGS))
    cotangents = split_micro_batches({name: gradients[name] for name in EMBEDDINGS},
                                     steps, shards)
    return loss, metrics, num_replicas, gradients, cotangents


def embedding_share(outputs, cached_gradients):
    """`Σ embeddings · cached gradients`: its gradient is the cached one, pulled back."""
    return sum(ops.sum(ops.cast(outputs[name], "float32") * ops.stop_gradient(
        cached_gradients[name])) for name in EMBEDDINGS)


def objective_share(weights, gradients):
    """`Σ weight · its gradient` over the objective's weights (e.g. `logit_scale`)."""
    return sum(ops.sum(ops.cast(weights[name], "float32") * ops.stop_gradient(gradients[name]))
               for name in weights)


def record_metrics(model, loss, metrics, batch_size):
    """Updates the loss tracker and the objective's in-batch metrics."""
    # Keras keeps `fit`'s loss in `_loss_tracker` (no public handle in 3.15);
    # its own train steps update it the same way.
    model._loss_tracker.update_state(loss, sample_weight=batch_size)
    for name, values in metrics.items():
        getattr(model, name).update_state(values)


def batch_size_of(inputs):
    return ops.shape(next(value for value in keras.tree.flatten(inputs)
                          if value is not None))[0]
