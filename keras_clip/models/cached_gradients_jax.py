"""Cached-gradient accumulation in JAX's stateless `train_step` (see `cached_gradients`).

Both passes are `jax.lax.scan`s over the micro-batches, carrying the
non-trainable state, so the compiled step holds one copy of the model
whatever `accumulation_steps` is. Under `keras.distribution` the step sees
the global batch, sharded along its first axis over the mesh's batch
dimension: each micro-batch takes its part of every device's rows, and the
loss over all the embeddings has the whole global batch as negatives.
"""

import jax
import keras

from keras_clip.models import cached_gradients as cached


def train_step(model, state, data):
    """`(logs, state)` after one step over `data` in `model.accumulation_steps` parts."""
    trainable, non_trainable, optimizer_variables, metrics_variables = state
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    steps, shards = model.accumulation_steps, batch_shards()
    batch_size = cached.batch_size_of(x)
    cached.check_splits(batch_size, steps, shards)
    micro_batches = cached.split_micro_batches(x, steps, shards)

    # The first pass's state is dropped: the second starts where it started.
    embeddings = _embed(model, trainable, non_trainable, micro_batches, shards, training=True)
    with keras.StatelessScope(state_mapping=list(zip(model.trainable_variables, trainable))):
        loss, metrics, num_replicas, gradients, cotangents = cached.loss_and_cotangents(
            model, embeddings, steps, shards)
    scale = _loss_scaler(model, optimizer_variables)
    extra_weight = 1.0 / (steps * num_replicas)

    def backpropagate(carry, inputs):
        carry_state, sums, extra_loss = carry
        batch, cotangent = inputs

        def share(values):
            outputs, new_state, losses = model.stateless_call(
                values, carry_state, batch, training=True, return_losses=True)
            extra = sum(losses) * extra_weight if losses else 0.0
            return scale(cached.embedding_share(outputs, cotangent) + extra), (new_state, extra)

        parts, (carry_state, extra) = jax.grad(share, has_aux=True)(trainable)
        return (carry_state, jax.tree.map(jax.numpy.add, sums, parts), extra_loss + extra), None

    zeros = jax.tree.map(jax.numpy.zeros_like, trainable)
    (non_trainable, sums, extra_loss), _ = jax.lax.scan(
        backpropagate, (non_trainable, zeros, jax.numpy.zeros(())),
        (micro_batches, cotangents))

    def objective_share(values):
        with keras.StatelessScope(state_mapping=list(zip(model.trainable_variables, values))):
            return scale(cached.objective_share(model.objective_weights, gradients))

    grads = jax.tree.map(jax.numpy.add, sums, jax.grad(objective_share)(trainable))
    trainable, optimizer_variables = model.optimizer.stateless_apply(
        optimizer_variables, grads, trainable)
    logs, metrics_variables = _record_metrics(
        model, metrics_variables, loss + extra_loss * num_replicas, metrics, x, y, embeddings,
        sample_weight, batch_size)
    return logs, (trainable, non_trainable, optimizer_variables, metrics_variables)


def test_step(model, state, data):
    """`(logs, state)` with the loss and metrics of `data`, embedded in parts."""
    trainable, non_trainable, metrics_variables = state
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    steps, shards = model.accumulation_steps, batch_shards()
    batch_size = cached.batch_size_of(x)
    cached.check_splits(batch_size, steps, shards)
    embeddings = _embed(model, trainable, non_trainable,
                        cached.split_micro_batches(x, steps, shards), shards, training=False)
    with keras.StatelessScope(state_mapping=list(zip(model.trainable_variables, trainable))):
        loss, metrics, _, _ = model.objective.loss_and_gradients(
            model.objective_weights, *(embeddings[name] for name in cached.EMBEDDINGS))
    logs, metrics_variables = _record_metrics(
        model, metrics_variables, loss, metrics, x, y, embeddings, sample_weight, batch_size)
    return logs, (trainable, non_trainable, metrics_variables)


def _embed(model, trainable, non_trainable, micro_batches, shards, training):
    """`{name: (B, D)}` embeddings of the micro-batches, run one after another."""

    def embed(carry, batch):
        outputs, carry = model.stateless_call(trainable, carry, batch, training=training)
        return carry, {name: outputs[name] for name in cached.EMBEDDINGS}

    _, embeddings = jax.lax.scan(embed, non_trainable, micro_batches)
    return cached.merge_micro_batches(embeddings, shards)


def batch_shards():
    """How many devices split the batch under the current `keras.distribution`."""
    distribution = keras.distribution.distribution()
    name = getattr(distribution, "batch_dim_name", None)
    if name is None:
        return 1
    mesh = distribution.device_mesh
    return mesh.shape[list(mesh.axis_names).index(name)]


def _loss_scaler(model, optimizer_variables):
    """The optimizer's `scale_loss` on this step's optimizer state (float16's scale)."""
    mapping = list(zip(model.optimizer.variables, optimizer_variables))

    def scale(value):
        with keras.StatelessScope(state_mapping=mapping):
            return model.optimizer.scale_loss(value)

    return scale


def _record_metrics(model, metrics_variables, loss, metrics, x, y, embeddings, sample_weight,
                    batch_size):
    """`(logs, metrics_variables)` with this step's loss and metrics, statelessly."""
    mapping = list(zip(model.metrics_variables, metrics_variables))
    with keras.StatelessScope(state_mapping=mapping) as scope:
        cached.record_metrics(model, loss, metrics, batch_size)
        logs = model.compute_metrics(x, y, embeddings, sample_weight)
    updated = [scope.get_current_value(variable) for variable in model.metrics_variables]
    return logs, [value if value is not None else variable.value
                  for value, variable in zip(updated, model.metrics_variables)]
