"""`keras-clip demo`: a tiny CLIP trained with `model.fit`, start to finish."""

import os

import keras
import numpy as np

from keras_clip.data.synthetic_pairs import synthetic_pairs
from keras_clip.models.clip_model import CLIPModel


def in_batch_accuracy(model, pairs):
    """Fraction of images whose own caption scores highest, and vice versa."""
    logits = keras.ops.convert_to_numpy(
        model.similarity(pairs["images"], pairs["token_ids"])
    )
    matches = np.arange(len(logits))
    return (
        float(np.mean(logits.argmax(axis=1) == matches)),
        float(np.mean(logits.argmax(axis=0) == matches)),
    )


def run_demo(preset="tiny-vit", steps=60, batch_size=16, num_pairs=64,
             learning_rate=1e-3, output="keras_clip_demo/model.keras"):
    """Trains `preset` on synthetic pairs; prints loss and accuracy; saves it.

    Returns the Keras `History` of the run.
    """
    if num_pairs % batch_size:
        raise ValueError(
            f"--pairs ({num_pairs}) must be a multiple of --batch-size "
            f"({batch_size}) so every step sees a full contrastive batch."
        )
    model = CLIPModel.from_preset(preset)
    pairs = synthetic_pairs(
        num_pairs, model.image_size, model.context_length,
        model.text_encoder.vocabulary_size,
    )
    probe = {key: value[:batch_size] for key, value in pairs.items()}
    chance = 1 / batch_size
    print(f"keras_clip demo on the {keras.backend.backend()} backend: {preset}, "
          f"{model.count_params():,} parameters, {num_pairs} random pairs.")
    before = in_batch_accuracy(model, probe)

    model.compile(optimizer=keras.optimizers.AdamW(learning_rate, weight_decay=0.2))
    steps_per_epoch = num_pairs // batch_size
    history = model.fit(
        pairs, batch_size=batch_size, epochs=max(1, steps // steps_per_epoch),
        verbose=2,
    )

    after = in_batch_accuracy(model, probe)
    losses = history.history["loss"]
    print(f"\nloss: {losses[0]:.3f} (first epoch) → {losses[-1]:.3f} (last); "
          f"log(batch) = {np.log(batch_size):.3f} is the loss of a guess.")
    print(f"image→text top-1 on one batch: {before[0]:.2f} → {after[0]:.2f} "
          f"(chance {chance:.2f}); text→image: {before[1]:.2f} → {after[1]:.2f}.")
    print(f"logit scale: {float(np.exp(keras.ops.convert_to_numpy(model.logit_scale))):.1f}")
    os.makedirs(os.path.dirname(output) or ".", exist_ok=True)
    model.save(output)
    print(f"saved {output}")
    return history
