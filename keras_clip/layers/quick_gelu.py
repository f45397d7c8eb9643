"""The QuickGELU activation of OpenAI's CLIP weights."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_clip")
def quick_gelu(x):
    """`x * sigmoid(1.702 * x)`, the sigmoid approximation of GELU.

    OpenAI trained every released CLIP with it, so weights converted from that
    release need it to reproduce their embeddings; `"gelu"` (exact erf form)
    is the choice for models trained from scratch.
    """
    return ops.multiply(x, ops.sigmoid(ops.multiply(1.702, x)))


def get_activation(name):
    """Resolves an activation name, knowing `"quick_gelu"` beside Keras' own."""
    if name == "quick_gelu":
        return quick_gelu
    return keras.activations.get(name)
