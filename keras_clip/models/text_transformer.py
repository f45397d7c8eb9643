"""CLIP's causal Transformer text tower."""

import keras

from keras_clip.layers.end_of_text_pooling import EndOfTextPooling
from keras_clip.layers.residual_attention_block import LAYER_NORM_EPSILON, residual_stack
from keras_clip.layers.token_and_position_embedding import TokenAndPositionEmbedding
from keras_clip.models.encoder import TextEncoder, projection_layer


@keras.saving.register_keras_serializable(package="keras_clip")
class TextTransformer(TextEncoder):
    """Text tower: embeddings → causal pre-LN blocks → LN → end-of-text → projection.

    The paper's base text encoder is 12 layers, width 512, 8 heads, a
    49,408-token byte-level BPE vocabulary and a context of 77. Attention is
    causal; the features are read at the first end-of-text token, after the
    final LayerNorm, and projected (no bias). Outputs are *not* normalised.

    Args:
        vocabulary_size: int. Number of token ids (49,408).
        context_length: int. Longest token sequence (77).
        hidden_dim: int. Width of the transformer.
        num_layers: int. Number of residual attention blocks.
        num_heads: int. Attention heads; must divide `hidden_dim`.
        output_dim: int. Width of the joint embedding.
        mlp_ratio: int. MLP width as a multiple of `hidden_dim`.
        activation: str. `"quick_gelu"` (OpenAI weights) or `"gelu"`.
        end_of_text_id: int. Id whose first occurrence is read (49,407).
        dtype: Keras dtype policy.

    Example:
    >>> encoder = TextTransformer(vocabulary_size=100, context_length=8,
    ...     hidden_dim=32, num_layers=2, num_heads=2, output_dim=16,
    ...     end_of_text_id=99)
    >>> tuple(encoder(np.array([[98, 5, 6, 99, 0, 0, 0, 0]])).shape)
    (1, 16)
    """

    #: Causal attention and end-of-text pooling: positions after the first
    #: end-of-text token never reach the output, so trailing padding can go.
    accepts_trimmed_token_ids = True
    end_of_text_argument = "end_of_text_id"

    def __init__(
        self,
        vocabulary_size,
        context_length,
        hidden_dim,
        num_layers,
        num_heads,
        output_dim,
        mlp_ratio=4,
        activation="quick_gelu",
        end_of_text_id=49407,
        dtype=None,
        **kwargs,
    ):
        # === Layers ===
        embedding = TokenAndPositionEmbedding(
            vocabulary_size, context_length, hidden_dim, dtype=dtype, name="embedding"
        )
        blocks = residual_stack("TextTransformer", hidden_dim, num_heads, num_layers,
                                mlp_ratio, activation, causal=True, dtype=dtype)
        ln_final = keras.layers.LayerNormalization(
            epsilon=LAYER_NORM_EPSILON, dtype=dtype, name="ln_final"
        )
        pooling = EndOfTextPooling(end_of_text_id, dtype=dtype, name="pooling")
        projection = projection_layer(output_dim, hidden_dim, dtype=dtype)

        # === Functional Model ===
        token_ids = keras.Input((None,), dtype="int32", name="token_ids")
        x = embedding(token_ids)  # (B, T, width)
        for block in blocks:
            x = block(x)
        x = pooling(ln_final(x), token_ids)  # (B, width)
        outputs = projection(x)  # (B, output_dim)
        super().__init__(inputs=token_ids, outputs=outputs, dtype=dtype, **kwargs)
        # Keras layers on torch can't be attributes before Model.__init__.
        self.embedding = embedding
        self.blocks = blocks
        self.ln_final = ln_final
        self.pooling = pooling
        self.projection = projection

        # === Config ===
        self.vocabulary_size = vocabulary_size
        self.context_length = context_length
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.output_dim = output_dim
        self.mlp_ratio = mlp_ratio
        self.activation = activation
        self.end_of_text_id = end_of_text_id

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
                "output_dim": self.output_dim,
                "mlp_ratio": self.mlp_ratio,
                "activation": self.activation,
                "end_of_text_id": self.end_of_text_id,
            }
        )
        return config
