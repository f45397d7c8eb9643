"""The anti-aliased bottleneck block of CLIP's ModifiedResNet."""

import keras

# PyTorch BatchNorm defaults, which CLIP checkpoints were trained with.
BATCH_NORM_EPSILON = 1e-5
BATCH_NORM_MOMENTUM = 0.9


def _conv(filters, kernel_size, name, dtype):
    # Stride 1 and an odd kernel: "same" padding is symmetric, as in PyTorch.
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        dtype=dtype,
        name=name,
    )


def batch_norm(name, dtype, gamma_initializer="ones"):
    return keras.layers.BatchNormalization(
        momentum=BATCH_NORM_MOMENTUM,
        epsilon=BATCH_NORM_EPSILON,
        gamma_initializer=gamma_initializer,
        dtype=dtype,
        name=name,
    )


@keras.saving.register_keras_serializable(package="keras_clip")
class Bottleneck(keras.layers.Layer):
    """1×1 → 3×3 → (avg-pool) → 1×1 with a residual, ReLU after the add.

    Every convolution has stride 1; where the block downsamples, an average
    pool of the stride does it, on both the main and the shortcut path (the
    anti-aliasing of Zhang, 2019, as in CLIP). The last BatchNorm's gain
    starts at zero, so each block starts as the identity.

    Args:
        filters: int. Width of the 1×1/3×3 convolutions; outputs `4 * filters`.
        stride: int. Downsampling factor (1 or 2).

    Example:
    >>> block = Bottleneck(filters=8, stride=2)
    >>> tuple(block(np.zeros((2, 8, 8, 16))).shape)
    (2, 4, 4, 32)
    """

    expansion = 4

    def __init__(self, filters, stride=1, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.stride = stride
        dtype = self.dtype_policy
        self.conv1 = _conv(filters, 1, "conv1", dtype)
        self.bn1 = batch_norm("bn1", dtype)
        self.conv2 = _conv(filters, 3, "conv2", dtype)
        self.bn2 = batch_norm("bn2", dtype)
        self.conv3 = _conv(self.expansion * filters, 1, "conv3", dtype)
        self.bn3 = batch_norm("bn3", dtype, gamma_initializer="zeros")
        self.pool = None
        if stride > 1:
            self.pool = keras.layers.AveragePooling2D(stride, dtype=dtype, name="pool")
        self.downsample_conv = None

    def build(self, input_shape):
        out_channels = self.expansion * self.filters
        mid_shape = (*input_shape[:-1], self.filters)
        self.conv1.build(input_shape)
        self.bn1.build(mid_shape)
        self.conv2.build(mid_shape)
        self.bn2.build(mid_shape)
        self.conv3.build(mid_shape)
        self.bn3.build((*input_shape[:-1], out_channels))
        if self.stride > 1 or input_shape[-1] != out_channels:
            dtype = self.dtype_policy
            self.downsample_conv = _conv(out_channels, 1, "downsample_conv", dtype)
            self.downsample_bn = batch_norm("downsample_bn", dtype)
            self.downsample_conv.build(input_shape)
            self.downsample_bn.build((*input_shape[:-1], out_channels))

    def call(self, x, training=None):
        relu = keras.activations.relu
        out = relu(self.bn1(self.conv1(x), training=training))
        out = relu(self.bn2(self.conv2(out), training=training))
        if self.pool is not None:
            out = self.pool(out)
        out = self.bn3(self.conv3(out), training=training)
        shortcut = x
        if self.downsample_conv is not None:
            if self.pool is not None:
                shortcut = self.pool(shortcut)
            shortcut = self.downsample_conv(shortcut)
            shortcut = self.downsample_bn(shortcut, training=training)
        return relu(out + shortcut)

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        if self.stride > 1:
            height = None if height is None else height // self.stride
            width = None if width is None else width // self.stride
        return (batch, height, width, self.expansion * self.filters)

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "stride": self.stride})
        return config
