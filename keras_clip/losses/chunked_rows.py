"""A loss that sums over rows of logits, and its gradients, a chunk of rows at a time.

Both objectives' losses are sums over query rows of a function of that
row's logits `a = exp(logit_scale) · q · Kᵀ (+ logit_bias)` against every
key, and for both the gradient with respect to the logits is "a function
of the logits minus the one-hot label": softmax for CLIP's cross-entropy,
the elementwise sigmoid for SigLIP's pairwise loss. So one loop serves
both: for `chunk_size` rows at a time it builds the `(chunk, N)` logits,
asks the loss for each row's value and `∂loss/∂a`, and pulls that back in
closed form:

    ∂q = s · ∂a · K,   ∂K += s · ∂aᵀ · q,   ∂logit_scale += Σ ∂a ⊙ (a − bias),
    ∂logit_bias += Σ ∂a,

as `a − bias` is proportional to `s = exp(logit_scale)`. Memory is
O(chunk_size × N); the time is the logits' matmul and the two gradient
matmuls per chunk.
"""

from keras import ops

from keras_clip.losses.contrastive_loss import scaled_logits


def rows_loss_and_gradients(queries, keys, logit_scale, row_offset, weight, chunk_size,
                            row_loss, logit_bias=None):
    """Sums `row_loss` over every query row against all keys, chunk by chunk.

    Args:
        queries: `(b, D)` local rows; row `i`'s label is key `row_offset + i`.
        keys: `(N, D)` all columns.
        logit_scale: scalar, the log of the logit scale.
        row_offset: int scalar, the key index of query row 0's label.
        weight: float scalar. The gradients are those of `weight · Σ row losses`.
        chunk_size: int. Rows whose logits are held at once.
        row_loss: `(logits, labels) -> (losses, logit_gradients)`: `(c,)`
            per-row losses and their `(c, N)` gradients w.r.t. the logits;
            None computes only the hits.
        logit_bias: scalar added to every logit, or None.

    Returns:
        A dict: `hits` (`(b,)` float32, 1 where a row's largest logit is its
        label's) and, with a `row_loss`, `loss_sum` (a scalar, the
        unweighted sum over rows), `queries` (`(b, D)`), `keys` (`(N, D)`),
        `logit_scale` and `logit_bias` (scalars; 0 without a bias).
    """
    queries = ops.cast(queries, "float32")
    keys = ops.cast(keys, "float32")
    rows, width = ops.shape(queries)[0], ops.shape(queries)[1]
    chunk = _smaller(chunk_size, rows)
    scale = ops.exp(ops.cast(logit_scale, "float32"))

    def body(index, carry):
        # The last chunk ends at the last row; rows an earlier chunk did are masked.
        start = ops.minimum(index * chunk, rows - chunk)
        counted = ops.cast(start + ops.arange(chunk) >= index * chunk, "float32")  # (c,)
        chunk_queries = ops.slice(queries, (start, 0), (chunk, width))  # (c, D)
        logits = scaled_logits(chunk_queries, keys, logit_scale, logit_bias)  # (c, N)
        labels = ops.cast(row_offset, "int32") + ops.cast(start, "int32") + ops.arange(
            chunk, dtype="int32")
        chunk_hits = ops.cast(ops.equal(ops.cast(ops.argmax(logits, axis=1), "int32"), labels),
                              "float32")
        found = dict(carry, hits=ops.slice_update(carry["hits"], (start,), chunk_hits))
        if row_loss is None:
            return found
        losses, logit_gradients = row_loss(logits, labels)
        found["loss_sum"] = carry["loss_sum"] + ops.sum(counted * losses)
        logit_gradients = logit_gradients * (weight * counted)[:, None]  # (c, N)
        chunk_query_gradients = scale * ops.matmul(logit_gradients, keys)  # (c, D)
        found["queries"] = ops.slice_update(
            carry["queries"], (start, 0),
            ops.slice(carry["queries"], (start, 0), (chunk, width)) + chunk_query_gradients)
        found["keys"] = carry["keys"] + scale * ops.matmul(
            ops.transpose(logit_gradients), chunk_queries)  # (N, D)
        # The logits less the bias are proportional to the scale.
        unbiased = logits if logit_bias is None else logits - ops.cast(logit_bias, "float32")
        found["logit_scale"] = carry["logit_scale"] + ops.sum(logit_gradients * unbiased)
        if logit_bias is not None:
            found["logit_bias"] = carry["logit_bias"] + ops.sum(logit_gradients)
        return found

    carry = {"hits": ops.zeros((rows,), "float32")}
    if row_loss is not None:
        carry.update(loss_sum=ops.zeros((), "float32"),
                     queries=ops.zeros((rows, width), "float32"),
                     keys=ops.zeros((ops.shape(keys)[0], width), "float32"),
                     logit_scale=ops.zeros((), "float32"), logit_bias=ops.zeros((), "float32"))
    return ops.fori_loop(0, (rows + chunk - 1) // chunk, body, carry)


def softmax_cross_entropy(logits, labels):
    """Each row's cross-entropy picking its label, and its gradient (softmax − one-hot)."""
    log_normalizer = ops.logsumexp(logits, axis=1)  # (c,)
    label_logits = ops.take_along_axis(logits, labels[:, None], axis=1)[:, 0]
    gradients = (ops.exp(logits - log_normalizer[:, None])
                 - ops.one_hot(labels, ops.shape(logits)[1], dtype="float32"))
    return log_normalizer - label_logits, gradients


def pairwise_sigmoid(logits, labels):
    """Each row's `−Σ_j log σ(z_j · a_j)` (z: +1 at the label, −1 elsewhere), and its gradient.

    The gradient is `σ(a) − one-hot`: `−σ(−a)` where z = +1, `σ(a)` where z = −1.
    """
    positives = ops.one_hot(labels, ops.shape(logits)[1], dtype="float32")
    signs = 2.0 * positives - 1.0
    losses = -ops.sum(ops.log_sigmoid(signs * logits), axis=1)
    return losses, ops.sigmoid(logits) - positives


def _smaller(size, rows):
    """`min(size, rows)`, where `rows` may be a graph tensor (an unknown batch size)."""
    if isinstance(rows, int):
        return min(size, rows)
    return ops.minimum(size, rows)
