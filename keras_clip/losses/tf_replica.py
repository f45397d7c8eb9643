"""All-gather of embeddings across the replicas of a `tf.distribute` strategy."""

import tensorflow as tf


def all_gather(image_embeddings, text_embeddings):
    """Gathers both `(b, D)` embeddings from all replicas along the batch.

    Returns `(all_image, all_text, row_offset, num_replicas)`, or None
    outside a multi-replica step. The offset is the number of rows held by
    lower-numbered replicas, so it stays right when the last batch splits
    unevenly. `ReplicaContext.all_gather` is differentiable: each replica
    gets back the gradient of every replica's loss with respect to its rows.
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    all_image = context.all_gather(image_embeddings, axis=0)  # (N, D)
    all_text = context.all_gather(text_embeddings, axis=0)  # (N, D)
    local_batch = tf.shape(image_embeddings)[:1]  # (1,)
    batch_sizes = context.all_gather(local_batch, axis=0)  # (num_replicas,)
    replica_id = tf.cast(context.replica_id_in_sync_group, tf.int32)
    row_offset = tf.reduce_sum(batch_sizes[:replica_id])
    return all_image, all_text, row_offset, context.num_replicas_in_sync


def all_sum(tensors):
    """The tensors summed over the replicas (as they are outside a multi-replica step)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return tensors
    return tuple(context.all_reduce(tf.distribute.ReduceOp.SUM, list(tensors)))
