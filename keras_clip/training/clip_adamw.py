"""CLIPAdamW: Adam with decoupled weight decay on weights only, per-part rates."""

import keras
from keras import ops

# Variables named like these are embeddings (token, positional, class), which
# CLIP does not decay, whatever their rank.
EMBEDDING_NAMES = ("embedding", "embeddings")
# The heads: each tower's projection into the joint space (the ResNet's is
# its attention pool's output projection) and the temperature.
HEAD_PATHS = ("projection/kernel", "attention_pooling/c_proj/")


def decays(variable):
    """Whether CLIP's recipe decays `variable`: matrices and kernels only.

    Biases, norm gains and offsets (rank 1), the temperature (rank 0) and
    embeddings are left alone, as in the paper's and OpenCLIP's recipes.
    """
    name = variable.path.split("/")[-1]
    is_embedding = name.endswith(EMBEDDING_NAMES)
    return len(variable.shape) >= 2 and not is_embedding


def is_head(variable):
    """Projections into the joint space and the temperature."""
    return variable.path.endswith("logit_scale") or any(
        part in variable.path for part in HEAD_PATHS
    )


@keras.saving.register_keras_serializable(package="keras_clip")
class CLIPAdamW(keras.optimizers.Adam):
    """AdamW as CLIP trains with it (Loshchilov & Hutter; Radford et al., 2021).

    Each step first shrinks a decayed variable by `lr · weight_decay` (the
    decoupled decay of PyTorch's AdamW), then takes the Adam step. Which
    variables decay is decided by `decays` (kernels and matrices, not biases,
    norms, embeddings or the temperature), so the rule survives saving and
    resuming, unlike a list of excluded variables. The towers' variables
    (all but `is_head`) take `tower_learning_rate_scale × lr`, decay
    included: fine-tuning often moves the pretrained towers more gently
    than the projections.

    Args:
        learning_rate: float or a `LearningRateSchedule`.
        weight_decay: float. Decoupled decay factor (CLIP: 0.2).
        beta_1, beta_2, epsilon: Adam's (ViT CLIP: 0.9, 0.98, 1e-6).
        tower_learning_rate_scale: float. Rate multiplier for the towers.
        **kwargs: base optimizer options (`global_clipnorm`, ...).

    Example:
    >>> optimizer = CLIPAdamW(learning_rate=5e-4, weight_decay=0.2, beta_2=0.98)
    >>> model.compile(optimizer=optimizer)
    """

    def __init__(
        self,
        learning_rate=5e-4,
        weight_decay=0.2,
        beta_1=0.9,
        beta_2=0.98,
        epsilon=1e-6,
        tower_learning_rate_scale=1.0,
        name="clip_adamw",
        **kwargs,
    ):
        kwargs.pop("amsgrad", None)
        super().__init__(
            learning_rate=learning_rate,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            name=name,
            **kwargs,
        )
        # The base class's own decay would use one rate for all variables.
        self.decoupled_weight_decay = weight_decay
        self.tower_learning_rate_scale = tower_learning_rate_scale

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        # Python lists indexed like the moments: fixed at trace time.
        self._decays = [decays(v) for v in var_list]
        self._rate_scales = [
            1.0 if is_head(v) else self.tower_learning_rate_scale for v in var_list
        ]

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        scale = self._rate_scales[index]
        if scale != 1.0:
            learning_rate = learning_rate * scale
        if self._decays[index] and self.decoupled_weight_decay:
            rate = ops.cast(learning_rate, variable.dtype)
            decay = ops.cast(self.decoupled_weight_decay, variable.dtype)
            self.assign_sub(variable, variable * (rate * decay))
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config.pop("amsgrad", None)
        config.update({
            "weight_decay": self.decoupled_weight_decay,
            "tower_learning_rate_scale": self.tower_learning_rate_scale,
        })
        return config
