"""Embedding many inputs a batch at a time: the one loop evaluation uses."""

import keras
import numpy as np


def slices(items, batch_size):
    """`items` (an array, or a list of strings) `batch_size` at a time."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    return (items[start : start + batch_size] for start in range(0, len(items), batch_size))


def embed_batches(encode, batches):
    """`(N, D)` float32 NumPy rows: `encode` applied to each batch, stacked in order.

    Example:
    >>> model = keras_clip.CLIPModel.from_preset("tiny-vit")
    >>> images = np.zeros((5, 32, 32, 3), "float32")
    >>> embed_batches(model.encode_image, slices(images, 2)).shape
    (5, 64)
    """
    rows = [np.asarray(keras.ops.convert_to_numpy(encode(batch)), np.float32)
            for batch in batches]
    if not rows:
        raise ValueError("Nothing to embed: the evaluation set is empty.")
    return np.concatenate(rows)


def embed_pairs(model, batches):
    """`(image_embeddings, text_embeddings)` of `{"images", "token_ids"}` batches."""
    def both(batch):
        image = model.encode_image(batch["images"])  # (B, D)
        text = model.encode_text(batch["token_ids"])  # (B, D)
        return keras.ops.concatenate([image, text], axis=-1)  # (B, 2D)

    rows = embed_batches(both, batches)
    return rows[:, : model.embedding_dim], rows[:, model.embedding_dim :]
