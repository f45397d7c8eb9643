"""Keeps CLIP's learned log-temperature in range after every update."""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_clip")
class LogitScaleConstraint(keras.constraints.Constraint):
    """Clips the log logit scale into `[min_value, max_value]`.

    CLIP learns `logit_scale = log(1 / temperature)` and clips it so logits
    are scaled by at most 100 (Radford et al., 2021, section 2.5). Keras
    optimizers apply a variable's constraint right after each update, so the
    clip holds under `fit` on every backend with no code in the loop.

    Args:
        min_value: float. Lower bound of the log scale (0: scale ≥ 1).
        max_value: float. Upper bound of the log scale (`log(100)`).
    """

    def __init__(self, min_value=0.0, max_value=math.log(100.0)):
        if min_value > max_value:
            raise ValueError(
                f"LogitScaleConstraint needs min_value <= max_value, got "
                f"min_value={min_value}, max_value={max_value}."
            )
        self.min_value = min_value
        self.max_value = max_value

    def __call__(self, w):
        return ops.clip(w, self.min_value, self.max_value)

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value}
