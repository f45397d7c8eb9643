"""Cached-gradient accumulation in PyTorch's `train_step` (see `cached_gradients`).

The first pass runs under `torch.no_grad()`; in the second, each
micro-batch's `backward()` adds its part to the weights' `.grad`. Under
`torch.distributed` each process does this on its part of the batch (the
objective gathers every process's embeddings), then the gradients are
summed over the processes as `torch_data_parallel` does without
accumulation.
"""

import keras
import torch

from keras_clip.losses.torch_replica import world_size
from keras_clip.models import cached_gradients as cached
from keras_clip.models import torch_data_parallel


def train_step(model, data):
    """One optimizer step of `model` over `data` in `model.accumulation_steps` parts."""
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    steps = model.accumulation_steps
    batch_size = cached.batch_size_of(x)
    cached.check_splits(batch_size, steps)
    micro_batches = cached.split_micro_batches(x, steps)

    state = model.non_trainable_variables
    saved = [variable.value.detach().clone() for variable in state]
    embeddings = _embed(model, micro_batches, steps, training=True)
    for variable, value in zip(state, saved):
        variable.assign(value)  # the second pass starts where the first did

    with torch.no_grad():  # closed-form gradients: no graph to keep for the loss
        loss, metrics, num_replicas, gradients, cotangents = cached.loss_and_cotangents(
            model, embeddings, steps)
    model.zero_grad()
    extra_loss = 0.0
    for index in range(steps):
        outputs = model(micro_batch(micro_batches, index), training=True)
        share = cached.embedding_share(outputs, micro_batch(cotangents, index))
        if model.losses:
            extra = sum(model.losses) / (steps * num_replicas)
            share, extra_loss = share + extra, extra_loss + extra.detach()
        model.optimizer.scale_loss(share).backward()
    model.optimizer.scale_loss(
        cached.objective_share(model.objective_weights, gradients)).backward()

    weights = model.trainable_weights[:]
    grads = [weight.value.grad for weight in weights]
    loss = loss + extra_loss * num_replicas
    if world_size() > 1:
        torch_data_parallel.sum_over_processes([grad for grad in grads if grad is not None])
    with torch.no_grad():
        model.optimizer.apply(grads, weights)
    if world_size() > 1:  # the logged loss is the global batch's, as without accumulation
        torch_data_parallel.broadcast_batch_statistics(model)
        loss = torch_data_parallel.global_loss(loss / num_replicas)
        batch_size = batch_size * num_replicas
    cached.record_metrics(model, loss, metrics, batch_size)
    return model.compute_metrics(x, y, embeddings, sample_weight=sample_weight)


def test_step(model, data):
    """The loss and metrics of `data`, embedded `model.accumulation_steps` parts at a time."""
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    steps = model.accumulation_steps
    batch_size = cached.batch_size_of(x)
    cached.check_splits(batch_size, steps)
    embeddings = _embed(model, cached.split_micro_batches(x, steps), steps, training=False)
    with torch.no_grad():
        loss, metrics, num_replicas, _ = model.objective.loss_and_gradients(
            model.objective_weights, *(embeddings[name] for name in cached.EMBEDDINGS))
    if world_size() > 1:
        loss = torch_data_parallel.global_loss(loss / num_replicas)
        batch_size = batch_size * num_replicas
    cached.record_metrics(model, loss, metrics, batch_size)
    return model.compute_metrics(x, y, embeddings, sample_weight=sample_weight)


def micro_batch(tree, index):
    return keras.tree.map_structure(lambda tensor: tensor[index], tree)


def _embed(model, micro_batches, steps, training):
    """`{name: (B, D)}` embeddings of the micro-batches, without autograd."""
    with torch.no_grad():
        parts = [model(micro_batch(micro_batches, index), training=training)
                 for index in range(steps)]
    return cached.merge_micro_batches(
        {name: torch.stack([part[name] for part in parts]) for name in cached.EMBEDDINGS})
