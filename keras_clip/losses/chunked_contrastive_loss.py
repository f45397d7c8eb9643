"""CLIP's contrastive loss and its embedding gradients, a chunk of rows at a time.

Cached-gradient accumulation (`models/cached_gradients.py`) needs the loss of
a whole global batch and its gradient with respect to every embedding, but
never the `(b, N)` logit matrices at once: `b` local rows against `N`
columns is 32,768² floats (4 GiB, twice) at the paper's batch on one device.
Each direction's cross-entropy is a sum over rows of a function of that
row's logits alone, so both the loss and its gradient are computed here for
`chunk_size` rows at a time, in closed form: for a row with logits `a`
(`exp(logit_scale) · q · Kᵀ`) and label `y`,

    loss = logsumexp(a) − a_y,    ∂loss/∂a = softmax(a) − onehot(y),

then `∂q = s · ∂a · K`, `∂K += s · ∂aᵀ · q`, `∂logit_scale += Σ ∂a ⊙ a`
(as `a` is proportional to `s = exp(logit_scale)`). Memory is
O(chunk_size × N), time the same two matmuls per direction as the dense loss
plus two for the gradients.
"""

from keras import ops

from keras_clip.losses.contrastive_loss import scaled_logits


def contrastive_loss_and_gradients(
    image_embeddings,
    text_embeddings,
    logit_scale,
    all_image_embeddings=None,
    all_text_embeddings=None,
    row_offset=0,
    loss_weight=1.0,
    chunk_size=512,
):
    """`contrastive_loss` of local rows against all columns, with its gradients.

    The arguments are those of `contrastive_logits`, plus:

    Args:
        loss_weight: float. The gradients are those of `loss_weight · loss`
            (e.g. `1 / num_replicas`: one replica's share of the global mean).
        chunk_size: int. Rows whose logits are held at once.

    Returns:
        A dict: `loss` (the mean of both directions' cross-entropies, as
        `contrastive_loss`), `image_hits` and `text_hits` (`(b,)` float32,
        as `top1_hits`), `image_rows` and `text_rows` (`(b, D)`: the
        gradients with respect to the local rows as queries),
        `image_columns` and `text_columns` (`(N, D)`: with respect to all
        embeddings as keys; across replicas they are summed over replicas,
        then the local slice added to the rows' gradient) and `logit_scale`
        (a scalar).
    """
    if all_image_embeddings is None:
        all_image_embeddings = image_embeddings
    if all_text_embeddings is None:
        all_text_embeddings = text_embeddings
    # The gradient of the mean over b rows, halved for the two directions.
    rows = ops.shape(image_embeddings)[0]
    weight = ops.cast(loss_weight, "float32") / (2.0 * ops.cast(rows, "float32"))
    image = _one_direction(image_embeddings, all_text_embeddings, logit_scale, row_offset,
                           weight, chunk_size)
    text = _one_direction(text_embeddings, all_image_embeddings, logit_scale, row_offset,
                          weight, chunk_size)
    return {
        "loss": (image["loss_sum"] + text["loss_sum"]) / (2.0 * ops.cast(rows, "float32")),
        "image_hits": image["hits"],
        "text_hits": text["hits"],
        "image_rows": image["queries"],
        "text_rows": text["queries"],
        "image_columns": text["keys"],
        "text_columns": image["keys"],
        "logit_scale": image["logit_scale"] + text["logit_scale"],
    }


def _one_direction(queries, keys, logit_scale, row_offset, weight, chunk_size):
    """Cross-entropy of each query row picking its key, and its gradients, by chunks."""
    queries = ops.cast(queries, "float32")
    keys = ops.cast(keys, "float32")
    rows, width = ops.shape(queries)[0], ops.shape(queries)[1]
    columns = ops.shape(keys)[0]
    chunk = _smaller(chunk_size, rows)
    scale = ops.exp(ops.cast(logit_scale, "float32"))

    def body(index, carry):
        loss_sum, hits, query_gradients, key_gradients, scale_gradient = carry
        # The last chunk ends at the last row; rows an earlier chunk did are masked.
        start = ops.minimum(index * chunk, rows - chunk)
        counted = ops.cast(start + ops.arange(chunk) >= index * chunk, "float32")  # (c,)
        chunk_queries = ops.slice(queries, (start, 0), (chunk, width))  # (c, D)
        logits = scaled_logits(chunk_queries, keys, logit_scale)  # (c, N)
        labels = ops.cast(row_offset, "int32") + ops.cast(start, "int32") + ops.arange(
            chunk, dtype="int32")
        log_normalizer = ops.logsumexp(logits, axis=1)  # (c,)
        label_logits = ops.take_along_axis(logits, labels[:, None], axis=1)[:, 0]
        loss_sum = loss_sum + ops.sum(counted * (log_normalizer - label_logits))
        chunk_hits = ops.cast(ops.equal(ops.cast(ops.argmax(logits, axis=1), "int32"), labels),
                              "float32")
        hits = ops.slice_update(hits, (start,), chunk_hits)
        # ∂(weight · loss)/∂logits: softmax minus the one-hot label, per counted row.
        logit_gradients = (ops.exp(logits - log_normalizer[:, None])
                           - ops.one_hot(labels, columns, dtype="float32"))
        logit_gradients = logit_gradients * (weight * counted)[:, None]  # (c, N)
        chunk_query_gradients = scale * ops.matmul(logit_gradients, keys)  # (c, D)
        query_gradients = ops.slice_update(
            query_gradients, (start, 0),
            ops.slice(query_gradients, (start, 0), (chunk, width)) + chunk_query_gradients)
        key_gradients = key_gradients + scale * ops.matmul(
            ops.transpose(logit_gradients), chunk_queries)  # (N, D)
        scale_gradient = scale_gradient + ops.sum(logit_gradients * logits)
        return loss_sum, hits, query_gradients, key_gradients, scale_gradient

    carry = (
        ops.zeros((), "float32"),
        ops.zeros((rows,), "float32"),
        ops.zeros((rows, width), "float32"),
        ops.zeros((columns, width), "float32"),
        ops.zeros((), "float32"),
    )
    chunks = (rows + chunk - 1) // chunk
    loss_sum, hits, query_gradients, key_gradients, scale_gradient = ops.fori_loop(
        0, chunks, body, carry)
    return {"loss_sum": loss_sum, "hits": hits, "queries": query_gradients,
            "keys": key_gradients, "logit_scale": scale_gradient}


def _smaller(size, rows):
    """`min(size, rows)`, where `rows` may be a graph tensor (an unknown batch size)."""
    if isinstance(rows, int):
        return min(size, rows)
    return ops.minimum(size, rows)
