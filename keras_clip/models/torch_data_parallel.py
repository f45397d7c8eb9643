"""`CLIPModel`'s training step on PyTorch under `torch.distributed`.

Keras' `fit` runs in every process (one per device, started by `torchrun`)
on that process's own batches. The step is Keras' own PyTorch step plus
what DistributedDataParallel adds: the gradients are summed over the
processes before the optimizer applies them (the loss is already the
global mean's share: `CLIPModel.compute_loss` divides by the number of
processes, and the contrastive loss gathers every process's embeddings),
and BatchNorm statistics are taken from process 0 after each step. So
every process applies the same update to the same weights, and the run
trains as one device fed the global batch would (but for BatchNorm, which
normalises each process's own part of the batch, as under tf.distribute).
The reported loss, in training and validation, is the global batch's.
"""

import keras
import torch
import torch.distributed as dist


def train_step(model, data):
    """One optimizer step of `model` on this process's part of the batch."""
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    y_pred = model(x, training=True)
    model.zero_grad()
    loss = model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                              training=True)
    track_global_loss(model, loss, x)
    loss = model.optimizer.scale_loss(loss)
    weights = model.trainable_weights[:]
    loss.backward()
    gradients = [weight.value.grad for weight in weights]
    sum_over_processes([gradient for gradient in gradients if gradient is not None])
    with torch.no_grad():
        model.optimizer.apply(gradients, weights)
    broadcast_batch_statistics(model)
    return model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)


def test_step(model, data):
    """Validation on this process's part of the batch; the loss is the global one."""
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    y_pred = model(x, training=False)
    loss = model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                              training=False)
    track_global_loss(model, loss, x)
    return model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)


def broadcast_batch_statistics(model):
    """Every process takes process 0's BatchNorm moving statistics."""
    statistics = [variable.value for layer in model._flatten_layers()
                  if isinstance(layer, keras.layers.BatchNormalization)
                  for variable in (layer.moving_mean, layer.moving_variance)]
    for value in statistics:
        dist.broadcast(value.data, src=0)


def global_loss(loss):
    """The global batch's loss: the sum of the processes' shares of it."""
    reported = loss.detach().clone()
    dist.all_reduce(reported)
    return reported


def track_global_loss(model, loss, x):
    """Logs the global batch's loss: the processes' shares of it, summed."""
    reported = global_loss(loss)
    batch = next(value for value in keras.tree.flatten(x) if value is not None).shape[0]
    model._loss_tracker.update_state(reported, sample_weight=batch * dist.get_world_size())


def sum_over_processes(tensors):
    """All-reduces `tensors` in place with one collective over a flat buffer."""
    if not tensors:
        return
    flat = torch.cat([tensor.reshape(-1) for tensor in tensors])
    dist.all_reduce(flat)
    offset = 0
    for tensor in tensors:
        tensor.copy_(flat[offset:offset + tensor.numel()].view_as(tensor))
        offset += tensor.numel()
