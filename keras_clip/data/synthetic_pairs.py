"""Random image–caption pairs: data that needs no download."""

import numpy as np


def synthetic_pairs(
    count,
    image_size=32,
    context_length=16,
    vocabulary_size=49408,
    end_of_text_id=None,
    seed=0,
):
    """`count` random images, each with its own random token sequence.

    Each sequence holds 1 to `context_length - 2` random ids, then the
    end-of-text id, then padding (0). There is nothing to learn but which
    caption goes with which image, so a model can only memorise the pairs:
    enough to show training working, not generalisation.

    Args:
        count: int. Number of pairs.
        image_size: int. Side of the square float32 images (standard normal).
        context_length: int. Width of the token id rows.
        vocabulary_size: int. Ids are drawn from `[1, vocabulary_size - 2)`.
        end_of_text_id: int. Closing id; `vocabulary_size - 1` by default.
        seed: int. Seed of the generator.

    Returns:
        `{"images": (count, image_size, image_size, 3) float32,
          "token_ids": (count, context_length) int32}`.
    """
    if context_length < 3:
        raise ValueError(f"context_length must be at least 3, got {context_length}.")
    if end_of_text_id is None:
        end_of_text_id = vocabulary_size - 1
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(count, image_size, image_size, 3)).astype("float32")
    token_ids = np.zeros((count, context_length), "int32")
    for row in token_ids:
        length = rng.integers(1, context_length - 1)
        row[:length] = rng.integers(1, vocabulary_size - 2, size=length)
        row[length] = end_of_text_id
    return {"images": images, "token_ids": token_ids}


def write_synthetic_tfrecords(directory, count=32, num_shards=2, context_length=16,
                              image_size=40, seed=0):
    """`count` random JPEG–token-id pairs as keras_clip TFRecord shards.

    For smoke runs and tests of the training path: `make_dataset(pattern,
    tokenizer=None, ...)` reads the stored ids. Each shard gets its `.json`
    sidecar with its record count. Returns the shards' glob pattern.
    """
    import io

    from PIL import Image

    from keras_clip.data import tfrecord_schema
    from keras_clip.data.shard_writer import write_shards

    rng = np.random.default_rng(seed)
    token_ids = synthetic_pairs(count, image_size=1, context_length=context_length,
                                seed=seed)["token_ids"]

    def records():
        for i in range(count):
            pixels = rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8)
            jpeg = io.BytesIO()
            Image.fromarray(pixels).save(jpeg, "JPEG", quality=90)
            yield tfrecord_schema.serialize_example(
                jpeg.getvalue(), [f"pair {i}"], key=str(i), token_ids=token_ids[i:i + 1])

    return write_shards(records(), f"{directory}/train", count, num_shards)
