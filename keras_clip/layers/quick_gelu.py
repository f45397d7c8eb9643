"""The GELU approximations of released CLIP and SigLIP weights."""

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


@keras.saving.register_keras_serializable(package="keras_clip")
def gelu_tanh(x):
    """GELU's tanh approximation, which SigLIP's weights were trained with."""
    return keras.activations.gelu(x, approximate=True)


def get_activation(name):
    """Resolves an activation name: `"quick_gelu"`, `"gelu_tanh"` or one of Keras'."""
    return {"quick_gelu": quick_gelu, "gelu_tanh": gelu_tanh}.get(name) or (
        keras.activations.get(name))
