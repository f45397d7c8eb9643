"""Multi-head self-attention with one fused input projection."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_clip")
class MultiHeadSelfAttention(keras.layers.Layer):
    """Self-attention as CLIP's towers use it.

    One `Dense` projects to queries, keys and values at once (the layout of
    PyTorch's `in_proj_weight`, which keeps checkpoint conversion a reshape),
    and `keras.ops.dot_product_attention` does the rest, so each backend can
    pick its fused kernel.

    Args:
        hidden_dim: int. Width of the token vectors.
        num_heads: int. Number of heads; must divide `hidden_dim`.
        causal: bool. Whether token `i` may only attend to tokens `<= i`.
        in_proj_std: float. Init std of the query/key/value projection.
        out_proj_std: float. Init std of the output projection.

    Example:
    >>> layer = MultiHeadSelfAttention(hidden_dim=32, num_heads=4)
    >>> layer(np.zeros((2, 5, 32))).shape
    (2, 5, 32)
    """

    def __init__(
        self,
        hidden_dim,
        num_heads,
        causal=False,
        in_proj_std=0.02,
        out_proj_std=0.02,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if hidden_dim % num_heads:
            raise ValueError(
                f"hidden_dim ({hidden_dim}) must be divisible by num_heads "
                f"({num_heads})."
            )
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.causal = causal
        self.in_proj_std = in_proj_std
        self.out_proj_std = out_proj_std
        self.head_dim = hidden_dim // num_heads
        self.in_proj = keras.layers.Dense(
            3 * hidden_dim,
            kernel_initializer=keras.initializers.RandomNormal(stddev=in_proj_std),
            dtype=self.dtype_policy,
            name="in_proj",
        )
        self.out_proj = keras.layers.Dense(
            hidden_dim,
            kernel_initializer=keras.initializers.RandomNormal(stddev=out_proj_std),
            dtype=self.dtype_policy,
            name="out_proj",
        )

    def build(self, input_shape):
        self.in_proj.build(input_shape)
        self.out_proj.build(input_shape)

    def call(self, x):
        batch, length = ops.shape(x)[0], ops.shape(x)[1]
        qkv = self.in_proj(x)  # (B, T, 3*width)
        qkv = ops.reshape(qkv, (batch, length, 3, self.num_heads, self.head_dim))
        query, key, value = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # (B, T, H, D)
        x = ops.dot_product_attention(query, key, value, is_causal=self.causal)
        x = ops.reshape(x, (batch, length, self.hidden_dim))  # (B, T, width)
        return self.out_proj(x)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_dim": self.hidden_dim,
                "num_heads": self.num_heads,
                "causal": self.causal,
                "in_proj_std": self.in_proj_std,
                "out_proj_std": self.out_proj_std,
            }
        )
        return config
