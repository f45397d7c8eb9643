"""SigLIP's pairwise sigmoid loss over image–text logits (Zhai et al., 2023)."""

from keras import ops


def sigmoid_loss(logits_per_image, labels):
    """`−(1/b) Σ_ij log σ(z_ij · logit_ij)` of `b` local rows against `N` columns.

    `z_ij` is +1 where column `j` is row `i`'s caption (`labels[i]`) and −1
    elsewhere: every pair is its own binary classification, so no row is
    normalised over the batch. Divided by the local rows, as the paper's
    per-device loss is; the replicas' mean is then the global batch's loss,
    `−(1/N) Σ` over all `N × N` pairs.

    Args:
        logits_per_image: `(b, N)` float32 logits `t · img @ txtᵀ + bias`.
        labels: `(b,)` int32, each row's matching column.
    """
    positives = ops.one_hot(labels, ops.shape(logits_per_image)[1], dtype="float32")
    signs = 2.0 * positives - 1.0
    rows = ops.cast(ops.shape(logits_per_image)[0], "float32")
    return -ops.sum(ops.log_sigmoid(signs * logits_per_image)) / rows
