"""Workarounds for Keras 3.15's TensorFlow trainer under MultiWorkerMirroredStrategy.

Two bugs stop `fit` before the first step when several workers train:

1. `_maybe_symbolic_build` all-reduces the whole first input batch across
   replicas only to learn its shapes, and the collective reduce rejects a
   dict of batches ("Attempt to convert a value ({'images': PerReplica...})
   ... to a Tensor"). One replica's batch has the same shapes.
2. `reduce_per_replica` reduces every log value with `axis=0`, which fails
   on scalars ("Invalid reduction dimension 0 for input with 0
   dimensions"), and every metric is a scalar. Scalars are reduced with
   `axis=None` instead.

`multi_worker_fixes()` applies both for the duration of a `with` block
and restores Keras afterwards. Remove it once Keras fixes them.
"""

import contextlib

import tensorflow as tf
from keras.src.backend.tensorflow import trainer as tf_trainer


def _one_replica(value):
    if isinstance(value, tf.distribute.DistributedValues):
        return value.values[0]
    return value


@contextlib.contextmanager
def multi_worker_fixes():
    original_build = tf_trainer.TensorFlowTrainer._maybe_symbolic_build
    original_reduce = tf_trainer.reduce_per_replica

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        if iterator is not None and data_batch is None:
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(_one_replica, next(batches))
                break
        return original_build(self, data_batch=data_batch)

    def reduce_per_replica(values, strategy, reduction):
        def reduce_scalar(value):
            # With one device per worker the values are plain tensors.
            if reduction in ("auto", "mean") and _one_replica(value).shape.rank == 0:
                return strategy.reduce("MEAN", value, axis=None)
            return original_reduce(value, strategy, reduction)

        return tf.nest.map_structure(reduce_scalar, values)

    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    tf_trainer.reduce_per_replica = reduce_per_replica
    try:
        yield
    finally:
        tf_trainer.TensorFlowTrainer._maybe_symbolic_build = original_build
        tf_trainer.reduce_per_replica = original_reduce
