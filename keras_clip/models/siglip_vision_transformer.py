"""SigLIP's Vision Transformer image tower."""

import keras

from keras_clip.layers.patch_dropout import PatchDropout
from keras_clip.layers.patch_embedding import PatchEmbedding
from keras_clip.layers.probe_attention_pooling import ProbeAttentionPooling
from keras_clip.layers.residual_attention_block import residual_stack
from keras_clip.models.encoder import ImageEncoder

SIGLIP_LAYER_NORM_EPSILON = 1e-6


@keras.saving.register_keras_serializable(package="keras_clip")
class SigLIPVisionTransformer(ImageEncoder):
    """Image tower: patchify → [patch dropout] → blocks → LN → attention-pooling head.

    SigLIP's ViT (Zhai et al., 2023), as Hugging Face's `SiglipVisionModel`
    defines it: a biased patchify convolution and learned positions, no
    class token and no norm before the blocks; pre-LN blocks with a
    tanh-GELU MLP and LayerNorm epsilon 1e-6; a final LayerNorm; then the
    "MAP" head (`ProbeAttentionPooling`), whose output, `hidden_dim` wide,
    is the embedding: there is no projection after it. Outputs are *not*
    normalised. With `patch_dropout` > 0, training steps see a random subset
    of each image's patches (FLIP).

    Args:
        image_size: int. Side of the square input image.
        patch_size: int. Side of a patch. Where it does not divide
            `image_size`, the last rows and columns go unread, as in the
            released 384-pixel models (27 patches of 14).
        hidden_dim: int. Width of the transformer and of the embedding.
        num_layers: int. Number of residual attention blocks.
        num_heads: int. Attention heads; must divide `hidden_dim`.
        mlp_dim: int. Hidden width of every MLP (blocks and head).
        activation: str. `"gelu_tanh"` (the released weights) or another.
        patch_dropout: float in [0, 1). Fraction of patches dropped per
            image in training; settable later.
        dtype: Keras dtype policy.

    Example:
    >>> encoder = SigLIPVisionTransformer(image_size=32, patch_size=8,
    ...     hidden_dim=32, num_layers=2, num_heads=2, mlp_dim=64)
    >>> tuple(encoder(np.zeros((2, 32, 32, 3))).shape)
    (2, 32)
    """

    def __init__(
        self,
        image_size,
        patch_size,
        hidden_dim,
        num_layers,
        num_heads,
        mlp_dim,
        activation="gelu_tanh",
        patch_dropout=0.0,
        dtype=None,
        **kwargs,
    ):
        epsilon = SIGLIP_LAYER_NORM_EPSILON
        # === Layers ===
        patch_embedding = PatchEmbedding(image_size, patch_size, hidden_dim, class_token=False,
                                         use_bias=True, drop_remainder=True, dtype=dtype,
                                         name="patch_embedding")
        dropout = PatchDropout(patch_dropout, num_leading=0, dtype=dtype, name="patch_dropout")
        blocks = residual_stack("SigLIPVisionTransformer", hidden_dim, num_heads, num_layers,
                                activation=activation, dtype=dtype, mlp_dim=mlp_dim,
                                layer_norm_epsilon=epsilon)
        ln_post = keras.layers.LayerNormalization(epsilon=epsilon, dtype=dtype, name="ln_post")
        head = ProbeAttentionPooling(hidden_dim, num_heads, mlp_dim, activation,
                                     layer_norm_epsilon=epsilon, dtype=dtype, name="head")

        # === Functional Model ===
        images = keras.Input((image_size, image_size, 3), name="images")
        x = dropout(patch_embedding(images))  # (B, kept patches, width)
        for block in blocks:
            x = block(x)
        outputs = head(ln_post(x))  # (B, width)
        super().__init__(inputs=images, outputs=outputs, dtype=dtype, **kwargs)
        # Keras layers on torch can't be attributes before Model.__init__.
        self.patch_embedding = patch_embedding
        self.patch_dropout_layer = dropout
        self.blocks = blocks
        self.ln_post = ln_post
        self.head = head

        # === Config ===
        self.image_size = image_size
        self.patch_size = patch_size
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.mlp_dim = mlp_dim
        self.output_dim = hidden_dim
        self.activation = activation

    # === Tower contract (models/encoder.py) ===
    @property
    def residual_blocks(self):
        return list(self.blocks)

    @property
    def head_variables(self):
        # The attention-pooling head maps into the joint space.
        return list(self.head.variables)

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
                "mlp_dim": self.mlp_dim,
                "activation": self.activation,
                "patch_dropout": self.patch_dropout,
            }
        )
        return config
