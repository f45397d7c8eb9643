"""ViT input: patchify, prepend the class token, add learned positions."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_clip")
class PatchEmbedding(keras.layers.Layer):
    """Turns `(B, H, W, 3)` images into `(B, 1 + grid**2, width)` tokens.

    A strided convolution (computed as a matmul of flattened patches) cuts
    the image into non-overlapping patches; a learned class token goes first
    and learned positions are added. Class token and positions start at std
    `width^-0.5`. CLIP's convolution has no bias; SigLIP's has one, and no
    class token (`(B, grid**2, width)` tokens).

    Args:
        image_size: int. Side of the square input image.
        patch_size: int. Side of a square patch; must divide `image_size`.
        hidden_dim: int. Width of each token.
        class_token: bool. Whether a learned class token goes first.
        use_bias: bool. Whether the convolution has a bias.
        drop_remainder: bool. Whether an `image_size` that `patch_size` does
            not divide is taken, its last rows and columns unread (as a
            "valid" convolution does: SigLIP's 384-pixel images, 27 patches
            of 14 a side); otherwise it is refused.

    Example:
    >>> layer = PatchEmbedding(image_size=32, patch_size=8, hidden_dim=16)
    >>> tuple(layer(np.zeros((2, 32, 32, 3))).shape)
    (2, 17, 16)
    """

    def __init__(self, image_size, patch_size, hidden_dim, class_token=True, use_bias=False,
                 drop_remainder=False, **kwargs):
        super().__init__(**kwargs)
        if image_size % patch_size and not drop_remainder:
            raise ValueError(
                f"image_size ({image_size}) must be divisible by patch_size "
                f"({patch_size})."
            )
        self.image_size = image_size
        self.patch_size = patch_size
        self.hidden_dim = hidden_dim
        self.grid_size = image_size // patch_size
        self.class_token = class_token
        self.use_bias = use_bias
        self.drop_remainder = drop_remainder
        self.num_leading = int(class_token)  # tokens before the patches
        self.conv = keras.layers.Conv2D(
            hidden_dim,
            kernel_size=patch_size,
            strides=patch_size,
            use_bias=use_bias,
            data_format="channels_last",  # the kernel layout the matmul reads
            dtype=self.dtype_policy,
            name="conv",
        )

    def build(self, input_shape):
        self.conv.build(input_shape)
        init = keras.initializers.RandomNormal(stddev=self.hidden_dim**-0.5)
        if self.class_token:
            self.class_embedding = self.add_weight(
                shape=(self.hidden_dim,), initializer=init, name="class_embedding"
            )
        self.position_embedding = self.add_weight(
            shape=(self.num_leading + self.grid_size**2, self.hidden_dim),
            initializer=init,
            name="position_embedding",
        )

    def call(self, images):
        expected = (self.image_size, self.image_size, 3)
        if tuple(images.shape[1:]) != expected and None not in images.shape[1:]:
            raise ValueError(
                f"PatchEmbedding expects images of shape (batch, *{expected}), "
                f"got {tuple(images.shape)}."
            )
        x = self._patches_times_kernel(images)  # (B, grid², width)
        if self.use_bias:
            x = x + ops.cast(self.conv.bias, x.dtype)
        if self.class_token:
            x = self._with_class_token(x)  # (B, 1 + grid**2, width)
        return x + ops.cast(self.position_embedding, x.dtype)[None]

    def _with_class_token(self, x):
        class_token = ops.cast(self.class_embedding, x.dtype)
        class_token = ops.broadcast_to(
            class_token[None, None, :], (ops.shape(x)[0], 1, self.hidden_dim)
        )  # (B, 1, width)
        return ops.concatenate([class_token, x], axis=1)

    def _patches_times_kernel(self, images):
        """The strided convolution, as one matmul of flattened patches by the kernel.

        Patches do not overlap, so the convolution is `(B·grid², p·p·3) @
        (p·p·3, width)` with the kernel `(p, p, 3, width)` read row-major,
        the same sums in another order. XLA's CPU backend differentiates
        this convolution's kernel several times slower than the matmul,
        and ~80× slower inside a loop (cached-gradient accumulation's
        `lax.scan`); the matmul is the fast path on every backend.
        """
        grid, patch, dtype = self.grid_size, self.patch_size, self.conv.compute_dtype
        batch, side = ops.shape(images)[0], grid * patch
        if side != self.image_size:
            images = images[:, :side, :side]
        x = ops.reshape(ops.cast(images, dtype), (batch, grid, patch, grid, patch, 3))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))  # (B, row, column, p, p, 3)
        x = ops.reshape(x, (batch, grid * grid, patch * patch * 3))
        kernel = ops.reshape(ops.cast(self.conv.kernel, dtype),
                             (patch * patch * 3, self.hidden_dim))
        return ops.matmul(x, kernel)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_leading + self.grid_size**2, self.hidden_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_size": self.image_size,
                "patch_size": self.patch_size,
                "hidden_dim": self.hidden_dim,
                "class_token": self.class_token,
                "use_bias": self.use_bias,
                "drop_remainder": self.drop_remainder,
            }
        )
        return config
