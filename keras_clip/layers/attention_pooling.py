"""ModifiedResNet's head: one attention query, the mean of the feature map."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_clip")
class AttentionPooling(keras.layers.Layer):
    """Pools a `(B, S, S, C)` feature map to `(B, output_dim)` by attention.

    The spatial mean is prepended as a token, learned positions are added to
    all `1 + S*S` tokens, and the mean token alone queries them all through
    multi-head attention; its output, projected, is the image embedding. This
    replaces global average pooling in CLIP's ResNets.

    Args:
        spatial_size: int. Side of the incoming feature map.
        hidden_dim: int. Channels of the feature map.
        num_heads: int. Attention heads; must divide `hidden_dim`.
        output_dim: int. Width of the output embedding.

    Example:
    >>> layer = AttentionPooling(spatial_size=2, hidden_dim=32, num_heads=2,
    ...                          output_dim=16)
    >>> tuple(layer(np.zeros((3, 2, 2, 32))).shape)
    (3, 16)
    """

    def __init__(self, spatial_size, hidden_dim, num_heads, output_dim, **kwargs):
        super().__init__(**kwargs)
        if hidden_dim % num_heads:
            raise ValueError(
                f"hidden_dim ({hidden_dim}) must be divisible by num_heads "
                f"({num_heads})."
            )
        self.spatial_size = spatial_size
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.output_dim = output_dim
        init = keras.initializers.RandomNormal(stddev=hidden_dim**-0.5)

        def dense(units, name):
            return keras.layers.Dense(
                units, kernel_initializer=init, dtype=self.dtype_policy, name=name
            )

        self.q_proj = dense(hidden_dim, "q_proj")
        self.k_proj = dense(hidden_dim, "k_proj")
        self.v_proj = dense(hidden_dim, "v_proj")
        self.c_proj = dense(output_dim, "c_proj")

    def build(self, input_shape):
        self.position_embedding = self.add_weight(
            shape=(1 + self.spatial_size**2, self.hidden_dim),
            initializer=keras.initializers.RandomNormal(stddev=self.hidden_dim**-0.5),
            name="position_embedding",
        )
        token_shape = (input_shape[0], None, self.hidden_dim)
        for layer in (self.q_proj, self.k_proj, self.v_proj, self.c_proj):
            layer.build(token_shape)

    def call(self, x):
        batch = ops.shape(x)[0]
        head_dim = self.hidden_dim // self.num_heads
        x = ops.reshape(x, (batch, self.spatial_size**2, self.hidden_dim))  # (B, S*S, C)
        x = ops.concatenate([ops.mean(x, axis=1, keepdims=True), x], axis=1)
        x = x + ops.cast(self.position_embedding, x.dtype)[None]  # (B, 1+S*S, C)

        def heads(t):
            return ops.reshape(t, (batch, -1, self.num_heads, head_dim))  # (B, T, H, D)

        query = heads(self.q_proj(x[:, :1]))  # (B, 1, H, D)
        out = ops.dot_product_attention(
            query, heads(self.k_proj(x)), heads(self.v_proj(x))
        )
        out = ops.reshape(out, (batch, self.hidden_dim))  # (B, C)
        return self.c_proj(out)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "spatial_size": self.spatial_size,
                "hidden_dim": self.hidden_dim,
                "num_heads": self.num_heads,
                "output_dim": self.output_dim,
            }
        )
        return config
