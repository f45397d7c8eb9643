"""The tower contract: what the rest of keras_clip asks of an image or text tower.

Nothing outside a tower tests its class or its layer names; it reads what
the tower declares here. A new tower subclasses `ImageEncoder` or
`TextEncoder`, builds its graph in `__init__`, fills in the declarations
below, and is registered in `models/clip_presets.py:TOWERS`.
"""

import keras

from keras_clip.layers.patch_dropout import check_rate


class Encoder(keras.Model):
    """A functional tower mapping its input to an `output_dim` embedding.

    Declares, for the rest of the package:
    - `output_dim`: int, the width of the joint embedding (set in
      `__init__`).
    - `residual_blocks`: the tower's blocks in forward order, for unlocking
      the last N (`lock`) and for rematerialisation; `[]` if it has none.
    - `remat_blocks`: the blocks that may be recomputed in the backward
      pass (default: all residual blocks).
    - `head_variables`: the variables of the projection into the joint
      space, which the tower learning-rate scale leaves at the full rate
      (default: those of the tower's `projection` layer).
    - `optimizer_defaults`: Adam's `beta_2` and `epsilon` for this kind
      of tower, where the config sets none (read from the image tower).

    Subclasses build their graph in `__init__` and extend `get_config` with
    their own constructor arguments; this base holds what all towers share.
    """

    #: The CLIP paper's Adam settings for its ViTs (and the default).
    optimizer_defaults = {"beta_2": 0.98, "epsilon": 1e-6}

    def __init__(self, inputs, outputs, dtype=None, **kwargs):
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        # Functional models drop `dtype`; keep it so get_config records the
        # policy the tower's layers were built with.
        self.dtype_policy = keras.dtype_policies.get(dtype)

    @property
    def residual_blocks(self):
        return []

    @property
    def remat_blocks(self):
        return self.residual_blocks

    @property
    def head_variables(self):
        # Towers ending in `projection_layer` keep it as `self.projection`.
        return list(self.projection.variables)

    def lock(self, unlocked_blocks=0):
        """Freezes the tower, then unfreezes its last `unlocked_blocks` blocks.

        Everything from the first unlocked block on (later blocks, final
        norms, pooling, projection) trains again; `unlocked_blocks=0` locks
        the whole tower, projection included, as LiT does (Zhai et al.,
        2022). A frozen BatchNorm runs in inference mode.
        """
        blocks = self.residual_blocks
        if unlocked_blocks > len(blocks):
            raise ValueError(
                f"Cannot unlock {unlocked_blocks} blocks of {self.name}: it has "
                f"{len(blocks)}."
            )
        if unlocked_blocks == 0:
            self.trainable = False
            return
        first_unlocked = blocks[len(blocks) - unlocked_blocks]
        self.trainable = True
        unlocked = False
        for layer in self.layers:  # topological, i.e. forward, order
            unlocked = unlocked or layer is first_unlocked
            layer.trainable = unlocked

    def get_config(self):
        # Functional.get_config would describe the graph; towers rebuild it
        # from their constructor arguments instead.
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
        }


class ImageEncoder(Encoder):
    """An image tower: `(B, image_size, image_size, 3)` pixels → `(B, output_dim)`.

    Declares `image_size` (int, set in `__init__`): the side of the square
    images it reads; and `grid_positions`: its `(1 + g², C)` positional
    embeddings over the `g × g` grid of the image (`(g², C)` without a
    class token), which
    `models/resolution.py` interpolates to move the tower to another image
    size (`[]` if it has none; then no weight may depend on the size);
    and `patch_dropout`, settable: the fraction of its patches each training
    image drops (FLIP), which towers without patches keep at 0 (a tower with
    patches puts its `PatchDropout` layer in `patch_dropout_layer`).
    """

    @property
    def grid_positions(self):
        return []

    @property
    def patch_dropout(self):
        """Fraction of patches each training image drops (FLIP); 0 for towers without."""
        layer = _patch_dropout_layer(self)
        return 0.0 if layer is None else layer.rate

    @patch_dropout.setter
    def patch_dropout(self, rate):
        layer = _patch_dropout_layer(self)
        if layer is None:
            if rate:
                raise ValueError(
                    f"patch_dropout applies to towers made of patches (ViTs), and "
                    f"{self.name} is a {type(self).__name__}.")
            return
        check_rate(rate)
        layer.rate = float(rate)


def _patch_dropout_layer(tower):
    # An instance attribute, not a class default: PyTorch modules keep their
    # sublayers apart, where a class attribute would hide them.
    return getattr(tower, "patch_dropout_layer", None)


class TextEncoder(Encoder):
    """A text tower: `(B, T)` token ids, `T ≤ context_length` → `(B, output_dim)`.

    Declares, set in `__init__`: `vocabulary_size` and `context_length`
    (ints); `accepts_trimmed_token_ids`: whether cutting a batch's trailing
    padding columns leaves its outputs unchanged (then the data pipeline
    trims each batch to its longest caption); and `padding_id`, the id it
    takes for padding, which must be the preprocessing record's `pad_id`.
    """

    #: Safe default: a tower that reads every position gets whole rows.
    accepts_trimmed_token_ids = False
    #: What keras_clip's tokenizer and stored ids pad with.
    padding_id = 0
    #: The constructor argument naming the end-of-text id its pooling reads,
    #: which a new vocabulary (a tokenizer's) must set; None if it has none.
    end_of_text_argument = None


def projection_layer(output_dim, input_dim, dtype=None, name="projection"):
    """A `Dense(output_dim, use_bias=False)` started at std `input_dim^-0.5`.

    Both towers end in one, mapping into the shared embedding space.
    """
    return keras.layers.Dense(
        output_dim,
        use_bias=False,
        kernel_initializer=keras.initializers.RandomNormal(stddev=input_dim**-0.5),
        dtype=dtype,
        name=name,
    )
