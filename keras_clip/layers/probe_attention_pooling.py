"""SigLIP's image head: a learned probe attends over the tokens ("MAP")."""

import keras
from keras import ops

from keras_clip.layers.quick_gelu import get_activation


@keras.saving.register_keras_serializable(package="keras_clip")
class ProbeAttentionPooling(keras.layers.Layer):
    """Pools `(B, T, width)` tokens to `(B, width)`: multihead attention pooling.

    A ViT without a class token reads its tokens this way (Zhai et al.,
    2022; SigLIP's image tower): one learned probe vector queries every
    token through multi-head attention (biased projections, PyTorch's fused
    query/key/value layout), then a pre-LayerNorm MLP is added residually:
    `y = attn(probe, x); y + mlp(ln(y))`.

    Args:
        hidden_dim: int. Width of the tokens.
        num_heads: int. Attention heads; must divide `hidden_dim`.
        mlp_dim: int. Hidden width of the MLP.
        activation: str. The MLP's activation (`"gelu_tanh"` for SigLIP).
        layer_norm_epsilon: float. The norm's epsilon.

    Example:
    >>> layer = ProbeAttentionPooling(hidden_dim=32, num_heads=2, mlp_dim=64)
    >>> tuple(layer(np.zeros((3, 9, 32))).shape)
    (3, 32)
    """

    def __init__(self, hidden_dim, num_heads, mlp_dim, activation="gelu_tanh",
                 layer_norm_epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        if hidden_dim % num_heads:
            raise ValueError(f"hidden_dim ({hidden_dim}) must be divisible by num_heads "
                             f"({num_heads}).")
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.mlp_dim = mlp_dim
        self.activation = activation
        self.layer_norm_epsilon = layer_norm_epsilon

        def dense(units, name, **options):
            return keras.layers.Dense(units, dtype=self.dtype_policy, name=name, **options)

        self.in_proj = dense(3 * hidden_dim, "in_proj")  # query, key, value
        self.out_proj = dense(hidden_dim, "out_proj")
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name="layer_norm")
        self.mlp_fc = dense(mlp_dim, "mlp_fc", activation=get_activation(activation))
        self.mlp_proj = dense(hidden_dim, "mlp_proj")

    def build(self, input_shape):
        self.probe = self.add_weight(
            shape=(self.hidden_dim,),
            initializer=keras.initializers.RandomNormal(stddev=self.hidden_dim**-0.5),
            name="probe")
        pooled = (input_shape[0], 1, self.hidden_dim)
        for layer in (self.in_proj, self.out_proj, self.layer_norm, self.mlp_fc):
            layer.build(pooled)
        self.mlp_proj.build((input_shape[0], 1, self.mlp_dim))

    def call(self, tokens):
        batch, width = ops.shape(tokens)[0], self.hidden_dim
        head_dim = width // self.num_heads
        kernel = ops.cast(self.in_proj.kernel, self.compute_dtype)
        bias = ops.cast(self.in_proj.bias, self.compute_dtype)
        probe = ops.cast(self.probe, self.compute_dtype)[None, None]  # (1, 1, width)
        query = ops.matmul(probe, kernel[:, :width]) + bias[:width]  # (1, 1, width)
        # Keys and values of every token, in one matmul.
        keys_values = ops.matmul(tokens, kernel[:, width:]) + bias[width:]  # (B, T, 2·width)

        def heads(t):
            return ops.reshape(t, (ops.shape(t)[0], -1, self.num_heads, head_dim))

        query = ops.broadcast_to(heads(query), (batch, 1, self.num_heads, head_dim))
        pooled = ops.dot_product_attention(
            query, heads(keys_values[..., :width]), heads(keys_values[..., width:]))
        pooled = self.out_proj(ops.reshape(pooled, (batch, 1, width)))  # (B, 1, width)
        pooled = pooled + self.mlp_proj(self.mlp_fc(self.layer_norm(pooled)))
        return pooled[:, 0]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.hidden_dim)

    def get_config(self):
        config = super().get_config()
        config.update({
            "hidden_dim": self.hidden_dim,
            "num_heads": self.num_heads,
            "mlp_dim": self.mlp_dim,
            "activation": self.activation,
            "layer_norm_epsilon": self.layer_norm_epsilon,
        })
        return config
