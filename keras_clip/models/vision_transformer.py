"""CLIP's Vision Transformer image tower."""

import keras

from keras_clip.layers.patch_dropout import PatchDropout
from keras_clip.layers.patch_embedding import PatchEmbedding
from keras_clip.layers.residual_attention_block import LAYER_NORM_EPSILON, residual_stack
from keras_clip.models.encoder import ImageEncoder, projection_layer


@keras.saving.register_keras_serializable(package="keras_clip")
class VisionTransformer(ImageEncoder):
    """Image tower: patchify → [patch dropout] → `ln_pre` → blocks → `ln_post` → projection.

    As in the CLIP release: a bias-free convolutional patchify, a class token
    and learned positions, a LayerNorm before the blocks (`ln_pre`), another
    on the class token's output (`ln_post`), then a bias-free projection into
    the joint embedding space. Outputs are *not* normalised; `CLIPModel` does
    that. With `patch_dropout` > 0, training steps see a random subset of
    each image's patches (FLIP, Li et al., 2023); inference sees them all.

    Args:
        image_size: int. Side of the square input image.
        patch_size: int. Side of a patch; must divide `image_size`.
        hidden_dim: int. Width of the transformer.
        num_layers: int. Number of residual attention blocks.
        num_heads: int. Attention heads; must divide `hidden_dim`.
        output_dim: int. Width of the joint embedding.
        mlp_ratio: int. MLP width as a multiple of `hidden_dim`.
        activation: str. `"quick_gelu"` (OpenAI weights) or `"gelu"`.
        patch_dropout: float in [0, 1). Fraction of patches dropped per
            image in training (the class token stays); settable later.
        dtype: Keras dtype policy (e.g. `"mixed_bfloat16"`).

    Example:
    >>> encoder = VisionTransformer(image_size=32, patch_size=8, hidden_dim=32,
    ...                             num_layers=2, num_heads=2, output_dim=16)
    >>> tuple(encoder(np.zeros((2, 32, 32, 3))).shape)
    (2, 16)
    """

    def __init__(
        self,
        image_size,
        patch_size,
        hidden_dim,
        num_layers,
        num_heads,
        output_dim,
        mlp_ratio=4,
        activation="quick_gelu",
        patch_dropout=0.0,
        dtype=None,
        **kwargs,
    ):
        # === Layers ===
        patch_embedding = PatchEmbedding(
            image_size, patch_size, hidden_dim, dtype=dtype, name="patch_embedding"
        )
        dropout = PatchDropout(patch_dropout, dtype=dtype, name="patch_dropout")
        ln_pre = keras.layers.LayerNormalization(
            epsilon=LAYER_NORM_EPSILON, dtype=dtype, name="ln_pre"
        )
        blocks = residual_stack("VisionTransformer", hidden_dim, num_heads, num_layers,
                                mlp_ratio, activation, dtype=dtype)
        ln_post = keras.layers.LayerNormalization(
            epsilon=LAYER_NORM_EPSILON, dtype=dtype, name="ln_post"
        )
        projection = projection_layer(output_dim, hidden_dim, dtype=dtype)

        # === Functional Model ===
        images = keras.Input((image_size, image_size, 3), name="images")
        x = ln_pre(dropout(patch_embedding(images)))  # (B, 1 + kept patches, width)
        for block in blocks:
            x = block(x)
        x = ln_post(x[:, 0])  # (B, width): the class token
        outputs = projection(x)  # (B, output_dim)
        super().__init__(inputs=images, outputs=outputs, dtype=dtype, **kwargs)
        # Keras layers on torch can't be attributes before Model.__init__.
        self.patch_embedding = patch_embedding
        self.patch_dropout_layer = dropout
        self.ln_pre = ln_pre
        self.blocks = blocks
        self.ln_post = ln_post
        self.projection = projection

        # === Config ===
        self.image_size = image_size
        self.patch_size = patch_size
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.output_dim = output_dim
        self.mlp_ratio = mlp_ratio
        self.activation = activation

    # === Tower contract (models/encoder.py) ===
    @property
    def residual_blocks(self):
        return list(self.blocks)

    @property
    def grid_positions(self):
        return [self.patch_embedding.position_embedding]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_size": self.image_size,
                "patch_size": self.patch_size,
                "hidden_dim": self.hidden_dim,
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "output_dim": self.output_dim,
                "mlp_ratio": self.mlp_ratio,
                "activation": self.activation,
                "patch_dropout": self.patch_dropout,
            }
        )
        return config
