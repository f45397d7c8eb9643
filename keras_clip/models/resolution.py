"""Moving a CLIP model to another input resolution (e.g. 224 → 336)."""

import keras
import numpy as np

from keras_clip.models.clip_model import CLIPModel


def interpolate_positions(positions, grid_size):
    """`(L + g², C)` positional embeddings → `(L + grid_size², C)`, `L` 0 or 1.

    A leading row (a class token's, or the ResNet pool's mean token), if
    there is one, is kept; the `g × g` grid of the others is resized
    bicubically, so each new position starts from the embedding of the same
    place in the image. SigLIP's ViT has no leading row.
    """
    positions = np.asarray(positions, np.float32)
    leading = _leading_rows(positions.shape[0])
    old_grid = int(round((positions.shape[0] - leading) ** 0.5))
    if old_grid == grid_size:
        return positions
    grid = positions[leading:].reshape(1, old_grid, old_grid, -1)
    grid = keras.ops.image.resize(
        grid, (grid_size, grid_size), interpolation="bicubic", data_format="channels_last"
    )
    grid = keras.ops.convert_to_numpy(grid).reshape(grid_size**2, -1)
    return np.concatenate([positions[:leading], grid], axis=0)


def _leading_rows(rows):
    """0 if `rows` is a square grid, 1 if it is one more than one; else an error."""
    for leading in (0, 1):
        side = int(round((rows - leading) ** 0.5))
        if side > 0 and side**2 == rows - leading:
            return leading
    raise ValueError(f"Positions of {rows} rows are not a square grid, nor 1 + one.")


def with_image_size(model, image_size):
    """A copy of `model` whose image tower takes `image_size` pixels.

    All weights carry over; the positional embeddings the tower declares
    as `grid_positions` (the ViT's, the ModifiedResNet attention pool's)
    are interpolated to the new grid. Fine-tuning at the new size then starts from the old model's
    behaviour, as in the paper's ViT-L/14@336.
    """
    image_config = model.image_encoder.get_config()
    image_config["image_size"] = image_size
    image_encoder = type(model.image_encoder).from_config(image_config)
    text_encoder = type(model.text_encoder).from_config(model.text_encoder.get_config())
    text_encoder.set_weights(model.text_encoder.get_weights())
    positions = {id(variable) for variable in model.image_encoder.grid_positions}
    for old, new in zip(model.image_encoder.weights, image_encoder.weights):
        value = keras.ops.convert_to_numpy(old)
        if tuple(old.shape) != tuple(new.shape):
            if id(old) not in positions:
                raise ValueError(f"{old.path} changes shape with the image size.")
            grid_size = int(round((new.shape[0] - _leading_rows(old.shape[0])) ** 0.5))
            value = interpolate_positions(value, grid_size)
        new.assign(value)
    resized = CLIPModel(
        image_encoder,
        text_encoder,
        objective=model.objective,
        preprocessing=model.preprocessing.replace(image_size=image_size),
        name=model.name,
    )
    for name, weight in model.objective_weights.items():
        resized.objective_weights[name].assign(keras.ops.convert_to_numpy(weight))
    return resized
