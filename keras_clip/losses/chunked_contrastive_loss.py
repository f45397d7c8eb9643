"""CLIP's contrastive loss and its embedding gradients, a chunk of rows at a time.

Cached-gradient accumulation (`models/cached_gradients.py`) needs the loss of
a whole global batch and its gradient with respect to every embedding, but
never the `(b, N)` logit matrices at once: `b` local rows against `N`
columns is 32,768² floats (4 GiB, twice) at the paper's batch on one device.
Each direction's cross-entropy is a sum over rows of a function of that
row's logits alone, so both the loss and its gradient are computed
`chunk_size` rows at a time, in closed form (`chunked_rows.py`): for a row
with logits `a` and label `y`, `loss = logsumexp(a) − a_y` and
`∂loss/∂a = softmax(a) − onehot(y)`. Memory is O(chunk_size × N), time the
same matmul per direction as the dense loss plus two for the gradients.
"""

from keras import ops

from keras_clip.losses import chunked_rows


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
    return chunked_rows.rows_loss_and_gradients(
        queries, keys, logit_scale, row_offset, weight, chunk_size,
        chunked_rows.softmax_cross_entropy)
