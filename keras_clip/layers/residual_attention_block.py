"""The pre-LayerNorm Transformer block of both CLIP towers."""

import keras

from keras_clip.layers.multi_head_self_attention import MultiHeadSelfAttention
from keras_clip.layers.quick_gelu import get_activation

# PyTorch's LayerNorm default, which every CLIP checkpoint was trained with
# (Keras' default is 1e-3).
LAYER_NORM_EPSILON = 1e-5


@keras.saving.register_keras_serializable(package="keras_clip")
class ResidualAttentionBlock(keras.layers.Layer):
    """`x + attn(ln_1(x))`, then `x + mlp(ln_2(x))`.

    Initialisation follows the CLIP release: attention inputs with std
    `width^-0.5`, MLP input `(2 * width)^-0.5`, and both residual output
    projections `width^-0.5 * (2 * num_layers)^-0.5`, so the residual stream's
    variance stays bounded however deep the stack.

    Args:
        hidden_dim: int. Width of the residual stream.
        num_heads: int. Attention heads; must divide `hidden_dim`.
        num_layers: int. Depth of the stack this block sits in (for init).
        mlp_ratio: int. MLP hidden width as a multiple of `hidden_dim`.
        activation: str. `"quick_gelu"` (OpenAI weights), `"gelu"` or
            `"gelu_tanh"` (SigLIP's).
        causal: bool. Causal self-attention (the text tower).
        mlp_dim: int or None. MLP hidden width, instead of `mlp_ratio`
            (SigLIP so400m's 4,304 is no multiple of its 1,152).
        layer_norm_epsilon: float. The norms' epsilon (SigLIP's: 1e-6).

    Example:
    >>> block = ResidualAttentionBlock(hidden_dim=32, num_heads=4, num_layers=2)
    >>> tuple(block(np.zeros((2, 5, 32))).shape)
    (2, 5, 32)
    """

    def __init__(
        self,
        hidden_dim,
        num_heads,
        num_layers,
        mlp_ratio=4,
        activation="quick_gelu",
        causal=False,
        mlp_dim=None,
        layer_norm_epsilon=LAYER_NORM_EPSILON,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.num_layers = num_layers
        self.mlp_ratio = mlp_ratio
        self.activation = activation
        self.causal = causal
        self.mlp_dim = mlp_dim
        self.layer_norm_epsilon = layer_norm_epsilon
        width = mlp_dim or mlp_ratio * hidden_dim

        normal = keras.initializers.RandomNormal
        residual_std = hidden_dim**-0.5 * (2 * num_layers) ** -0.5
        self.ln_1 = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name="ln_1"
        )
        self.attn = MultiHeadSelfAttention(
            hidden_dim,
            num_heads,
            causal=causal,
            in_proj_std=hidden_dim**-0.5,
            out_proj_std=residual_std,
            dtype=self.dtype_policy,
            name="attn",
        )
        self.ln_2 = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name="ln_2"
        )
        self.mlp_fc = keras.layers.Dense(
            width,
            activation=get_activation(activation),
            kernel_initializer=normal(stddev=(2 * hidden_dim) ** -0.5),
            dtype=self.dtype_policy,
            name="mlp_fc",
        )
        self.mlp_proj = keras.layers.Dense(
            hidden_dim,
            kernel_initializer=normal(stddev=residual_std),
            dtype=self.dtype_policy,
            name="mlp_proj",
        )

    def build(self, input_shape):
        for layer in (self.ln_1, self.attn, self.ln_2, self.mlp_fc):
            layer.build(input_shape)
        self.mlp_proj.build((*input_shape[:-1], self.mlp_fc.units))

    def call(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp_proj(self.mlp_fc(self.ln_2(x)))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_dim": self.hidden_dim,
                "num_heads": self.num_heads,
                "num_layers": self.num_layers,
                "mlp_ratio": self.mlp_ratio,
                "activation": self.activation,
                "causal": self.causal,
                "mlp_dim": self.mlp_dim,
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config


def residual_stack(owner, hidden_dim, num_heads, num_layers, mlp_ratio=4,
                   activation="quick_gelu", causal=False, dtype=None, **options):
    """`num_layers` blocks named `block_0…`, as a tower stacks them.

    `owner` names the tower in the error when `num_heads` does not divide
    `hidden_dim`; `options` (`mlp_dim`, `layer_norm_epsilon`) go to every block.
    """
    if hidden_dim % num_heads:
        raise ValueError(
            f"{owner}: hidden_dim ({hidden_dim}) must be divisible by num_heads "
            f"({num_heads})."
        )
    return [
        ResidualAttentionBlock(hidden_dim, num_heads, num_layers, mlp_ratio=mlp_ratio,
                               activation=activation, causal=causal, dtype=dtype,
                               name=f"block_{i}", **options)
        for i in range(num_layers)
    ]
