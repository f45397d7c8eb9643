"""What CLIP's image and text towers share."""

import keras


class Encoder(keras.Model):
    """A functional tower mapping its input to an `output_dim` embedding.

    Subclasses build their graph in `__init__` and extend `get_config` with
    their own constructor arguments; this base holds what all towers share.
    """

    def __init__(self, inputs, outputs, dtype=None, **kwargs):
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        # Functional models drop `dtype`; keep it so get_config records the
        # policy the tower's layers were built with.
        self.dtype_policy = keras.dtype_policies.get(dtype)

    def get_config(self):
        # Functional.get_config would describe the graph; towers rebuild it
        # from their constructor arguments instead.
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
        }


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
