"""Cached-gradient accumulation in TensorFlow's `train_step` (see `cached_gradients`).

Both passes are `tf.while_loop`s over the micro-batches, so the traced (and
XLA-compiled) step holds one copy of the model whatever `accumulation_steps`
is; the second pass records each micro-batch on its own `GradientTape`.
Under a `tf.distribute` strategy this runs in each replica on its part of
the batch; the objective gathers the embeddings across replicas.
"""

import keras
import tensorflow as tf

from keras_clip.models import cached_gradients as cached


def train_step(model, data):
    """One optimizer step of `model` over `data` in `model.accumulation_steps` parts."""
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    steps = model.accumulation_steps
    batch_size = _checked_batch_size(x, steps)
    micro_batches = cached.split_micro_batches(x, steps)
    state = model.non_trainable_variables
    saved = [tf.identity(variable.value) for variable in state]
    embeddings = cached.merge_micro_batches(_embed(model, micro_batches, steps))
    for variable, value in zip(state, saved):
        variable.assign(value)  # the second pass starts where the first did

    loss, metrics, num_replicas, gradients, cotangents = cached.loss_and_cotangents(
        model, embeddings, steps)
    weights = model.trainable_weights
    sums, extra_loss = _backpropagate(model, micro_batches, cotangents, steps,
                                      1.0 / (steps * num_replicas))
    with tf.GradientTape() as tape:
        share = cached.objective_share(model.objective_weights, gradients)
        share = model.optimizer.scale_loss(share)
    objective_gradients = tape.gradient(share, weights)
    model.optimizer.apply_gradients(zip(_add(sums, objective_gradients), weights))
    cached.record_metrics(model, loss + extra_loss * num_replicas, metrics, batch_size)
    return model.compute_metrics(x, y, embeddings, sample_weight=sample_weight)


def test_step(model, data):
    """The loss and metrics of `data`, embedded `model.accumulation_steps` parts at a time."""
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    steps = model.accumulation_steps
    batch_size = _checked_batch_size(x, steps)
    embeddings = cached.merge_micro_batches(
        _embed(model, cached.split_micro_batches(x, steps), steps, training=False))
    loss, metrics, _, _ = model.objective.loss_and_gradients(
        model.objective_weights, *(embeddings[name] for name in cached.EMBEDDINGS))
    cached.record_metrics(model, loss, metrics, batch_size)
    return model.compute_metrics(x, y, embeddings, sample_weight=sample_weight)


def _checked_batch_size(x, steps):
    """The batch size, checked to split into `steps` micro-batches.

    A batch size unknown when tracing (`fit` on arrays) is checked as the
    step runs; an XLA-compiled step drops that check, and a batch that does
    not split fails in the reshape instead.
    """
    batch_size = cached.batch_size_of(x)
    cached.check_splits(batch_size, steps)
    if not isinstance(batch_size, int):
        check = tf.debugging.assert_equal(
            batch_size % steps, 0,
            message=f"accumulation_steps={steps} needs whole batches whose size it divides")
        with tf.control_dependencies([check]):
            batch_size = tf.identity(batch_size)
    return batch_size


def _embed(model, micro_batches, steps, training=True):
    """`{name: (steps, m, D)}` embeddings of every micro-batch, no tape recording."""
    arrays = {name: tf.TensorArray(tf.float32, size=steps) for name in cached.EMBEDDINGS}

    def body(index, arrays):
        outputs = model(keras.tree.map_structure(lambda t: t[index], micro_batches),
                        training=training)
        return index + 1, {name: arrays[name].write(index, tf.cast(outputs[name], tf.float32))
                           for name in cached.EMBEDDINGS}

    # One micro-batch at a time: overlapping iterations would hold several's
    # activations (and reorder BatchNorm's updates).
    _, arrays = tf.while_loop(lambda index, _: index < steps, body, (0, arrays),
                              parallel_iterations=1)
    return {name: array.stack() for name, array in arrays.items()}


def _backpropagate(model, micro_batches, cotangents, steps, extra_weight):
    """The weights' gradients summed over micro-batches, and the layers' losses' share."""
    weights = model.trainable_weights

    def body(index, sums, extra_loss):
        with tf.GradientTape() as tape:
            outputs = model(keras.tree.map_structure(lambda t: t[index], micro_batches),
                            training=True)
            share = cached.embedding_share(
                outputs, keras.tree.map_structure(lambda t: t[index], cotangents))
            extra = tf.add_n(model.losses) * extra_weight if model.losses else 0.0
            share = model.optimizer.scale_loss(share + extra)
        return index + 1, _add(sums, tape.gradient(share, weights)), extra_loss + extra

    zeros = [tf.zeros(weight.shape, weight.dtype) for weight in weights]
    _, sums, extra_loss = tf.while_loop(lambda index, *_: index < steps, body,
                                        (0, zeros, tf.zeros((), tf.float32)),
                                        parallel_iterations=1)
    return sums, extra_loss


def _add(sums, parts):
    """`sums + parts`, where a part may be sparse (an embedding's) or None (unused)."""
    return [total if part is None else total + tf.convert_to_tensor(part)
            for total, part in zip(sums, parts)]
