"""A ConvNeXt image tower, built on `keras.applications`' ConvNeXt."""

import keras

# The generic builder behind keras.applications.ConvNeXtTiny/Small/…: any
# depths and widths (the tiny test preset needs its own). Keras 3.15 keeps
# it in keras.src; the named variants build the same graph.
from keras.src.applications.convnext import ConvNeXt

from keras_clip.models.encoder import ImageEncoder, projection_layer


@keras.saving.register_keras_serializable(package="keras_clip")
class ConvNeXtEncoder(ImageEncoder):
    """Image tower: ConvNeXt stages → global average pool → LayerNorm → projection.

    ConvNeXt (Liu et al., 2022) as `keras.applications` builds it, without
    its ImageNet rescaling (keras_clip's pipelines normalise images with the
    model's preprocessing record) and without its classifier; the pooled,
    normalised features are projected (no bias) into the joint space, as
    OpenCLIP's ConvNeXt CLIPs do. `ConvNeXtTiny` is `depths=(3, 3, 9, 3)`,
    `projection_dims=(96, 192, 384, 768)`. Outputs are *not* normalised.

    Adam's defaults are OpenCLIP's for towers other than ViTs (β2 0.999,
    ε 1e-8), which its ConvNeXt CLIPs were trained with. Its residual
    blocks are the blocks of the four stages; `lock` unfreezes
    the last ones, from each block's depthwise convolution on. Each block is
    several Keras layers, so none is rematerialised (`remat_blocks` is
    empty).

    Args:
        image_size: int. Side of the square input (at least 32).
        depths: 4 ints. Blocks per stage.
        projection_dims: 4 ints. Channels per stage.
        output_dim: int. Width of the joint embedding.
        drop_path_rate: float. Stochastic depth rate while training.
        layer_scale_init_value: float. Initial per-channel residual scale.
        dtype: Keras dtype policy.

    Example:
    >>> encoder = ConvNeXtEncoder(image_size=32, depths=(1, 1, 1, 1),
    ...                           projection_dims=(8, 16, 32, 64), output_dim=16)
    >>> tuple(encoder(np.zeros((2, 32, 32, 3))).shape)
    (2, 16)
    """

    def __init__(
        self,
        image_size,
        depths,
        projection_dims,
        output_dim,
        drop_path_rate=0.0,
        layer_scale_init_value=1e-6,
        dtype=None,
        **kwargs,
    ):
        if len(depths) != 4 or len(projection_dims) != 4:
            raise ValueError(
                f"ConvNeXtEncoder: depths and projection_dims need 4 entries each, got "
                f"{list(depths)} and {list(projection_dims)}."
            )
        if image_size < 32:
            raise ValueError(f"ConvNeXtEncoder: image_size must be at least 32, got "
                             f"{image_size}.")
        # === Layers and Functional Model ===
        images = keras.Input((image_size, image_size, 3), name="images")
        # keras.applications builds with the global dtype policy.
        previous = keras.config.dtype_policy()
        policy = previous if dtype is None else keras.dtype_policies.get(dtype)
        keras.config.set_dtype_policy(policy)
        try:
            backbone = ConvNeXt(
                depths=list(depths),
                projection_dims=list(projection_dims),
                drop_path_rate=drop_path_rate,
                layer_scale_init_value=layer_scale_init_value,
                include_top=False,
                include_preprocessing=False,
                input_tensor=images,
                pooling="avg",  # then LayerNorm: (B, projection_dims[-1])
                name="convnext",
            )
            projection = projection_layer(output_dim, projection_dims[-1], dtype=dtype)
        finally:
            keras.config.set_dtype_policy(previous)
        # Built on `images`, the backbone's layers are this tower's own.
        outputs = projection(backbone.output)  # (B, output_dim)
        super().__init__(inputs=images, outputs=outputs, dtype=dtype, **kwargs)
        self.projection = projection

        # === Config ===
        self.image_size = image_size
        self.depths = tuple(depths)
        self.projection_dims = tuple(projection_dims)
        self.output_dim = output_dim
        self.drop_path_rate = drop_path_rate
        self.layer_scale_init_value = layer_scale_init_value

    # === Tower contract (models/encoder.py) ===
    optimizer_defaults = {"beta_2": 0.999, "epsilon": 1e-8}

    @property
    def residual_blocks(self):
        # keras.applications names each block's layers "…_stage_S_block_B_…";
        # its depthwise convolution comes first.
        return [layer for layer in self.layers if layer.name.endswith("_depthwise_conv")]

    @property
    def remat_blocks(self):
        return []

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_size": self.image_size,
                "depths": list(self.depths),
                "projection_dims": list(self.projection_dims),
                "output_dim": self.output_dim,
                "drop_path_rate": self.drop_path_rate,
                "layer_scale_init_value": self.layer_scale_init_value,
            }
        )
        return config
