"""CLIP's symmetric contrastive loss over image–text similarity logits."""

from keras import ops


def scaled_logits(embeddings, other_embeddings, logit_scale, logit_bias=None):
    """`exp(logit_scale) · a @ bᵀ (+ logit_bias)`, in float32: `(B_a, B_b)`.

    The one place keras_clip writes its logits; `logit_scale` is the *log*
    of the scale, and the optional bias is a scalar added to every logit.
    """
    scale = ops.exp(ops.cast(logit_scale, "float32"))
    logits = scale * ops.matmul(
        ops.cast(embeddings, "float32"), ops.transpose(ops.cast(other_embeddings, "float32"))
    )
    if logit_bias is not None:
        logits = logits + ops.cast(logit_bias, "float32")
    return logits


def contrastive_logits(
    image_embeddings,
    text_embeddings,
    logit_scale,
    all_image_embeddings=None,
    all_text_embeddings=None,
    row_offset=0,
):
    """Similarity logits of local rows against all columns, and their labels.

    With `b` local pairs among `N` in the (global) batch, image `i` must pick
    its own caption among all `N`, and caption `i` its own image; the
    matching column of local row `i` is `row_offset + i`. On one device the
    "all" embeddings are the local ones and the offset is 0; across replicas
    they are the gathered batch and the rows this replica holds. Computing
    only `b × N` logits per replica, not `N × N`, keeps memory linear in `N`.

    Args:
        image_embeddings: `(b, D)` L2-normalised image embeddings.
        text_embeddings: `(b, D)` L2-normalised text embeddings.
        logit_scale: scalar, the *log* of the logit scale (learned).
        all_image_embeddings: `(N, D)` or None for the local ones.
        all_text_embeddings: `(N, D)` or None for the local ones.
        row_offset: int scalar, index in the global batch of local row 0.

    Returns:
        `(logits_per_image, logits_per_text, labels)`: two `(b, N)` float32
        tensors and `(b,)` int32 labels.
    """
    if all_image_embeddings is None:
        all_image_embeddings = image_embeddings
    if all_text_embeddings is None:
        all_text_embeddings = text_embeddings
    logits_per_image = scaled_logits(image_embeddings, all_text_embeddings, logit_scale)
    logits_per_text = scaled_logits(text_embeddings, all_image_embeddings, logit_scale)
    local_batch = ops.shape(image_embeddings)[0]
    labels = ops.cast(row_offset, "int32") + ops.arange(local_batch, dtype="int32")
    return logits_per_image, logits_per_text, labels


def contrastive_loss(logits_per_image, logits_per_text, labels):
    """Mean of the image→text and text→image cross-entropies (a scalar)."""
    image_loss = ops.sparse_categorical_crossentropy(
        labels, logits_per_image, from_logits=True
    )
    text_loss = ops.sparse_categorical_crossentropy(
        labels, logits_per_text, from_logits=True
    )
    return (ops.mean(image_loss) + ops.mean(text_loss)) / 2.0


def top1_hits(logits, labels):
    """`(b,)` float32: 1 where a row's largest logit is at its label."""
    predicted = ops.cast(ops.argmax(logits, axis=-1), "int32")
    return ops.cast(ops.equal(predicted, labels), "float32")
