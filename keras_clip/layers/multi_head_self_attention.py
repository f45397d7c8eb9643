"""Multi-head self-attention with one fused input projection."""

import contextlib

import keras
from keras import ops


@contextlib.contextmanager
def heads_first_attention(model, enabled=True):
    """Within it, every `MultiHeadSelfAttention` of `model` is `heads_first`.

    Export traces its signatures inside this context (see `heads_first`);
    each layer's own setting is restored afterwards, even after an error.
    `enabled=False` leaves the layers as they are (an XLA-compiled export).
    """
    layers = [layer for layer in model._flatten_layers(include_self=True)
              if isinstance(layer, MultiHeadSelfAttention)]
    before = [layer.heads_first for layer in layers]
    try:
        for layer in layers:
            layer.heads_first = layer.heads_first or enabled
        yield
    finally:
        for layer, value in zip(layers, before):
            layer.heads_first = value


def flash_attention():
    """`dot_product_attention`'s `flash_attention`: off on TPUs, else Keras' choice.

    On a TPU, Keras (3.15) picks its Pallas splash-attention kernel by
    itself, which fails under `DataParallel` on TPU pods and on Colab's
    v2-8 (keras-team/keras#21116) and ignores
    `keras.config.disable_flash_attention()`; XLA's own attention is
    reliable there, and CLIP's sequences (50–577 tokens) are short. Elsewhere
    Keras uses a fused kernel when the inputs allow (cuDNN on recent GPUs),
    unless disabled with `keras.config.disable_flash_attention()`.
    """
    if keras.config.is_flash_attention_enabled() is False:
        return False
    if keras.backend.backend() == "jax":
        import jax

        if jax.devices()[0].platform == "tpu":
            return False
    return None


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
        heads_first: bool. On TensorFlow, move the heads first once and
            multiply plainly, for TensorFlow's graph executor. TensorFlow has
            no fused attention kernel: `dot_product_attention` there is two
            einsums over `(B, T, H, D)`. XLA compiles those well, but the
            graph executor that runs a served SavedModel pays for transposes
            around both matmuls and three strided slices: 17–22% of a small
            ViT's image-embedding kernel time. The arithmetic is the same;
            under XLA this layout trained 8–13% slower, so it is off by
            default and export turns it on (`heads_first_attention`).
            Other backends ignore it.

    Example:
    >>> layer = MultiHeadSelfAttention(hidden_dim=32, num_heads=4)
    >>> tuple(layer(np.zeros((2, 5, 32))).shape)
    (2, 5, 32)
    """

    def __init__(
        self,
        hidden_dim,
        num_heads,
        causal=False,
        in_proj_std=0.02,
        out_proj_std=0.02,
        heads_first=False,
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
        self.heads_first = heads_first
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
        if self.heads_first and keras.backend.backend() == "tensorflow":
            x = self._heads_first_attention(qkv)
        else:
            query, key, value = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # (B, T, H, D)
            x = ops.dot_product_attention(query, key, value, is_causal=self.causal,
                                          flash_attention=flash_attention())
        x = ops.reshape(x, (batch, length, self.hidden_dim))  # (B, T, width)
        return self.out_proj(x)

    def _heads_first_attention(self, qkv):
        """`dot_product_attention`'s arithmetic with the heads moved first once.

        One transpose of the projections to `(3, B, H, T, D)` makes both
        products plain batched matmuls. Logits and softmax stay float32, as
        in `dot_product_attention`.
        """
        query, key, value = ops.unstack(ops.transpose(qkv, (2, 0, 3, 1, 4)))
        logits = ops.einsum("bhtd,bhsd->bhts", query, key)
        logits = ops.cast(logits, "float32") * (self.head_dim**-0.5)
        if self.causal:
            length = ops.shape(logits)[-1]
            positions = ops.arange(length)
            allowed = positions[None, :] <= positions[:, None]  # (T, S)
            logits = ops.where(allowed, logits, -1e9)
        probs = ops.cast(ops.softmax(logits, axis=-1), value.dtype)
        x = ops.einsum("bhts,bhsd->bhtd", probs, value)
        return ops.transpose(x, (0, 2, 1, 3))  # (B, T, H, D)

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
                "heads_first": self.heads_first,
            }
        )
        return config
