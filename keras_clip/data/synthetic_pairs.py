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
    import json
    import os

    import tensorflow as tf
    from PIL import Image

    from keras_clip.data import tfrecord_schema

    rng = np.random.default_rng(seed)
    token_ids = synthetic_pairs(count, image_size=1, context_length=context_length,
                                seed=seed)["token_ids"]
    os.makedirs(directory, exist_ok=True)
    for shard in range(num_shards):
        path = os.path.join(directory, f"train-{shard:05d}-of-{num_shards:05d}.tfrecord")
        indices = range(shard, count, num_shards)
        with tf.io.TFRecordWriter(path) as writer:
            for i in indices:
                pixels = rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8)
                jpeg = io.BytesIO()
                Image.fromarray(pixels).save(jpeg, "JPEG", quality=90)
                writer.write(tfrecord_schema.serialize_example(
                    jpeg.getvalue(), [f"pair {i}"], key=str(i),
                    token_ids=token_ids[i:i + 1]))
        with open(path + tfrecord_schema.SIDECAR_SUFFIX, "w") as file:
            json.dump({"records": len(indices)}, file)
    return os.path.join(directory, "train-*.tfrecord")
