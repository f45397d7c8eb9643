"""CLIP's ModifiedResNet image tower."""

import keras

from keras_clip.layers.attention_pooling import AttentionPooling
from keras_clip.layers.bottleneck import Bottleneck, batch_norm
from keras_clip.models.encoder import ImageEncoder

# Stem (/4) and three strided stages (/8): the feature map is image_size / 32.
TOTAL_STRIDE = 32


@keras.saving.register_keras_serializable(package="keras_clip")
class ModifiedResNet(ImageEncoder):
    """Image tower: 3-conv stem → four bottleneck stages → attention pooling.

    Differs from a torchvision ResNet as in the CLIP paper: a stem of three
    3×3 convolutions with an average pool instead of a max pool; anti-aliased
    strided blocks (`Bottleneck`); attention pooling instead of global
    average pooling. Stage `i` has `width * 2**i` filters and the pooled map
    `32 * width` channels. Outputs are *not* normalised.

    Args:
        image_size: int. Side of the square input; must be divisible by 32.
        blocks_per_stage: tuple of 4 ints. Bottlenecks in each stage
            (`(3, 4, 6, 3)` is RN50).
        width: int. Filters of the first stage (64 for RN50).
        num_heads: int. Heads of the attention pooling.
        output_dim: int. Width of the joint embedding.
        dtype: Keras dtype policy.

    Example:
    >>> encoder = ModifiedResNet(image_size=64, blocks_per_stage=(1, 1, 1, 1),
    ...                          width=8, num_heads=4, output_dim=16)
    >>> tuple(encoder(np.zeros((2, 64, 64, 3))).shape)
    (2, 16)
    """

    #: The paper's Adam settings for its ResNets (its hyperparameter tables).
    optimizer_defaults = {"beta_2": 0.999, "epsilon": 1e-8}

    def __init__(
        self,
        image_size,
        blocks_per_stage,
        width,
        num_heads,
        output_dim,
        dtype=None,
        **kwargs,
    ):
        if image_size % TOTAL_STRIDE:
            raise ValueError(
                f"ModifiedResNet: image_size ({image_size}) must be divisible by "
                f"the total stride {TOTAL_STRIDE}."
            )
        if len(blocks_per_stage) != 4:
            raise ValueError(
                f"ModifiedResNet: blocks_per_stage needs 4 entries, got "
                f"{blocks_per_stage}."
            )
        pooled_dim = 8 * width * Bottleneck.expansion
        # === Layers ===
        # PyTorch pads a strided 3×3 by 1 on every side; Keras' "same" would
        # pad only bottom/right, shifting the grid of converted weights.
        stem_padding = keras.layers.ZeroPadding2D(1, dtype=dtype, name="stem_pad")
        stem_convs, stem_norms = [], []
        for i, (filters, stride) in enumerate(
            [(width // 2, 2), (width // 2, 1), (width, 1)], start=1
        ):
            stem_convs.append(
                keras.layers.Conv2D(
                    filters,
                    3,
                    strides=stride,
                    padding="valid" if stride > 1 else "same",
                    use_bias=False,
                    kernel_initializer="he_normal",
                    dtype=dtype,
                    name=f"stem_conv{i}",
                )
            )
            stem_norms.append(batch_norm(f"stem_bn{i}", dtype))
        stem_pool = keras.layers.AveragePooling2D(2, dtype=dtype, name="stem_pool")
        stages = [
            [
                Bottleneck(
                    width * 2**stage,
                    stride=2 if (stage > 0 and block == 0) else 1,
                    dtype=dtype,
                    name=f"stage{stage + 1}_block{block}",
                )
                for block in range(num_blocks)
            ]
            for stage, num_blocks in enumerate(blocks_per_stage)
        ]
        attention_pooling = AttentionPooling(
            image_size // TOTAL_STRIDE,
            pooled_dim,
            num_heads,
            output_dim,
            dtype=dtype,
            name="attention_pooling",
        )

        # === Functional Model ===
        images = keras.Input((image_size, image_size, 3), name="images")
        x = stem_padding(images)
        for conv, norm in zip(stem_convs, stem_norms):
            x = keras.activations.relu(norm(conv(x)))
        x = stem_pool(x)  # (B, image_size / 4, image_size / 4, width)
        for stage in stages:
            for block in stage:
                x = block(x)
        outputs = attention_pooling(x)  # (B, output_dim)
        super().__init__(inputs=images, outputs=outputs, dtype=dtype, **kwargs)
        # Keras layers on torch can't be attributes before Model.__init__.
        self.stem_padding = stem_padding
        self.stem_convs = stem_convs
        self.stem_norms = stem_norms
        self.stem_pool = stem_pool
        self.stages = stages
        self.attention_pooling = attention_pooling

        # === Config ===
        self.image_size = image_size
        self.blocks_per_stage = tuple(blocks_per_stage)
        self.width = width
        self.num_heads = num_heads
        self.output_dim = output_dim

    # === Tower contract (models/encoder.py) ===
    @property
    def residual_blocks(self):
        return [block for stage in self.stages for block in stage]

    @property
    def remat_blocks(self):
        # Recomputing a bottleneck would update its BatchNorms' moving
        # statistics twice, and TensorFlow's graph-mode recompute_grad
        # cannot pass them `training`.
        return []

    @property
    def grid_positions(self):
        return [self.attention_pooling.position_embedding]

    @property
    def head_variables(self):
        # The attention pool's output projection maps into the joint space.
        return list(self.attention_pooling.c_proj.variables)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_size": self.image_size,
                "blocks_per_stage": list(self.blocks_per_stage),
                "width": self.width,
                "num_heads": self.num_heads,
                "output_dim": self.output_dim,
            }
        )
        return config
