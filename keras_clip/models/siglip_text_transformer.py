"""SigLIP's Transformer text tower."""

import keras

from keras_clip.layers.residual_attention_block import residual_stack
from keras_clip.layers.token_and_position_embedding import TokenAndPositionEmbedding
from keras_clip.models.encoder import TextEncoder
from keras_clip.models.siglip_vision_transformer import SIGLIP_LAYER_NORM_EPSILON


@keras.saving.register_keras_serializable(package="keras_clip")
class SigLIPTextTransformer(TextEncoder):
    """Text tower: embeddings → pre-LN blocks → LN → last position → biased projection.

    SigLIP's text encoder, as Hugging Face's `SiglipTextModel` defines it:
    token embeddings plus learned positions (64 of them in the released
    models); bidirectional (not causal) pre-LN blocks with a tanh-GELU MLP
    and LayerNorm epsilon 1e-6; a final LayerNorm; the features of the
    **last position** of the row, whatever token it holds (the released
    models were trained on rows padded to the full context, so that is
    padding after the text); then a projection with a bias. Every position
    is read, so shorter rows (a batch trimmed to its longest caption) are
    padded back to the whole context with `padding_id` first: the output
    does not depend on trimming. Outputs are *not* normalised.

    Args:
        vocabulary_size: int. Number of token ids (32,000 released).
        context_length: int. Token positions (64 released).
        hidden_dim: int. Width of the transformer.
        num_layers: int. Number of residual attention blocks.
        num_heads: int. Attention heads; must divide `hidden_dim`.
        mlp_dim: int. Hidden width of every block's MLP.
        output_dim: int or None. Width of the embedding (default
            `hidden_dim`, as released).
        activation: str. `"gelu_tanh"` (the released weights) or another.
        padding_id: int. The id rows are padded with, which the
            preprocessing record must name (0: keras_clip's data pads with
            it; the released SigLIP tokenizer's 1 is not supported yet).
        dtype: Keras dtype policy.

    Example:
    >>> encoder = SigLIPTextTransformer(vocabulary_size=100, context_length=8,
    ...     hidden_dim=32, num_layers=2, num_heads=2, mlp_dim=64)
    >>> tuple(encoder(np.array([[5, 6, 7, 0, 0, 0, 0, 0]])).shape)
    (1, 32)
    """

    accepts_trimmed_token_ids = False
    end_of_text_argument = None  # reads the last position, not an id

    def __init__(
        self,
        vocabulary_size,
        context_length,
        hidden_dim,
        num_layers,
        num_heads,
        mlp_dim,
        output_dim=None,
        activation="gelu_tanh",
        padding_id=0,
        dtype=None,
        **kwargs,
    ):
        epsilon = SIGLIP_LAYER_NORM_EPSILON
        output_dim = output_dim or hidden_dim
        # === Layers ===
        embedding = TokenAndPositionEmbedding(
            vocabulary_size, context_length, hidden_dim, pad_with=padding_id, dtype=dtype,
            name="embedding")
        blocks = residual_stack("SigLIPTextTransformer", hidden_dim, num_heads, num_layers,
                                activation=activation, dtype=dtype, mlp_dim=mlp_dim,
                                layer_norm_epsilon=epsilon)
        ln_final = keras.layers.LayerNormalization(epsilon=epsilon, dtype=dtype,
                                                   name="ln_final")
        projection = keras.layers.Dense(output_dim, dtype=dtype, name="projection")

        # === Functional Model ===
        token_ids = keras.Input((None,), dtype="int32", name="token_ids")
        x = embedding(token_ids)  # (B, T, width)
        for block in blocks:
            x = block(x)
        outputs = projection(ln_final(x)[:, -1])  # (B, output_dim): the last position
        super().__init__(inputs=token_ids, outputs=outputs, dtype=dtype, **kwargs)
        # Keras layers on torch can't be attributes before Model.__init__.
        self.embedding = embedding
        self.blocks = blocks
        self.ln_final = ln_final
        self.projection = projection

        # === Config ===
        self.vocabulary_size = vocabulary_size
        self.context_length = context_length
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.mlp_dim = mlp_dim
        self.output_dim = output_dim
        self.activation = activation
        self.padding_id = padding_id

    # === Tower contract (models/encoder.py) ===
    @property
    def residual_blocks(self):
        return list(self.blocks)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "context_length": self.context_length,
                "hidden_dim": self.hidden_dim,
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "mlp_dim": self.mlp_dim,
                "output_dim": self.output_dim,
                "activation": self.activation,
                "padding_id": self.padding_id,
            }
        )
        return config
