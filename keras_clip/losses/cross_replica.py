"""Gives the contrastive loss the whole batch when replicas split it."""

import keras


def gather_across_replicas(image_embeddings, text_embeddings):
    """Both embeddings from every replica, with this replica's place among them.

    Returns `(all_image, all_text, row_offset, num_replicas)`. Under a
    `tf.distribute` strategy each replica holds a slice of the batch, and
    under `torch.distributed` each process does, so the embeddings are
    all-gathered (gradients flow back through the gather); everywhere else
    (one device; JAX `keras.distribution`, where the step already sees the
    global, sharded batch) they are returned as they are.
    """
    if keras.backend.backend() == "tensorflow":
        # Only the TensorFlow backend runs tf.distribute strategies; the
        # module importing TensorFlow is loaded only then.
        from keras_clip.losses import tf_replica

        gathered = tf_replica.all_gather(image_embeddings, text_embeddings)
        if gathered is not None:
            return gathered
    if keras.backend.backend() == "torch":
        from keras_clip.losses import torch_replica

        gathered = torch_replica.all_gather(image_embeddings, text_embeddings)
        if gathered is not None:
            return gathered
    return image_embeddings, text_embeddings, 0, 1


def sum_across_replicas(*tensors):
    """Each tensor summed over the replicas (processes) that split the batch.

    The same tensors where nothing splits it (one device; JAX
    `keras.distribution`, whose step sees the global batch).
    """
    if keras.backend.backend() == "tensorflow":
        from keras_clip.losses import tf_replica

        return tf_replica.all_sum(tensors)
    if keras.backend.backend() == "torch":
        from keras_clip.losses import torch_replica

        return torch_replica.all_sum(tensors)
    return tensors
