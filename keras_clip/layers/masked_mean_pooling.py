"""Mean of token vectors that ignores padding: the bag-of-words text encoder."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_clip")
class MaskedMeanPooling(keras.layers.Layer):
    """Averages `(B, T, width)` vectors over the tokens whose id isn't padding.

    Args:
        padding_id: int. Id whose positions are ignored (0).

    Call args:
        hidden: `(B, T, width)` float tensor.
        token_ids: `(B, T)` int tensor.

    Example:
    >>> pool = MaskedMeanPooling()
    >>> tuple(pool(np.ones((1, 3, 2)), np.array([[4, 7, 0]])).shape)
    (1, 2)
    """

    def __init__(self, padding_id=0, **kwargs):
        super().__init__(**kwargs)
        self.padding_id = padding_id

    def call(self, hidden, token_ids):
        mask = ops.cast(ops.not_equal(token_ids, self.padding_id), hidden.dtype)
        total = ops.einsum("btw,bt->bw", hidden, mask)  # (B, width)
        # An all-padding row averages nothing: it maps to zeros, not NaN.
        count = ops.maximum(ops.sum(mask, axis=1, keepdims=True), 1.0)  # (B, 1)
        return total / count

    def compute_output_shape(self, hidden_shape, token_ids_shape):
        return (hidden_shape[0], hidden_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update({"padding_id": self.padding_id})
        return config
