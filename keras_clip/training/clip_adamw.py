"""CLIPAdamW: Adam with decoupled weight decay on weights only, per-part rates."""

import keras
from keras import ops

# Variables named like these are embeddings (token, positional, class), which
# CLIP does not decay, whatever their rank.
EMBEDDING_NAMES = ("embedding", "embeddings")
# The heads of optimizers saved before they were told them (keras_clip
# 0.1's towers): the projections and the temperature, by path.
_SAVED_HEAD_PATHS = ("projection/kernel", "attention_pooling/c_proj/", "logit_scale")


def decays(variable):
    """Whether CLIP's recipe decays `variable`: matrices and kernels only.

    Biases, norm gains and offsets (rank 1), the temperature (rank 0) and
    embeddings are left alone, as in the paper's and OpenCLIP's recipes.
    """
    name = variable.path.split("/")[-1]
    is_embedding = name.endswith(EMBEDDING_NAMES)
    return len(variable.shape) >= 2 and not is_embedding


def _saved_is_head(path):
    return any(part in path for part in _SAVED_HEAD_PATHS)


@keras.saving.register_keras_serializable(package="keras_clip")
class CLIPAdamW(keras.optimizers.Adam):
    """AdamW as CLIP trains with it (Loshchilov & Hutter; Radford et al., 2021).

    Each step first shrinks a decayed variable by `lr · weight_decay` (the
    decoupled decay of PyTorch's AdamW), then takes the Adam step. Which
    variables decay is decided by `decays` (kernels and matrices, not biases,
    norms, embeddings or the temperature), so the rule survives saving and
    resuming, unlike a list of excluded variables. The towers' variables
    (all but the model's `head_variables`) take `tower_learning_rate_scale
    × lr`, decay included: fine-tuning often moves the pretrained towers
    more gently than the projections.

    Args:
        learning_rate: float or a `LearningRateSchedule`.
        weight_decay: float. Decoupled decay factor (CLIP: 0.2).
        beta_1, beta_2, epsilon: Adam's (ViT CLIP: 0.9, 0.98, 1e-6).
        tower_learning_rate_scale: float. Rate multiplier for the towers.
        head_variables: the variables that keep the full rate (variables
            or their paths): `CLIPModel.head_variables`, i.e. what each
            tower declares as its head, and the objective's weights.
        **kwargs: base optimizer options (`global_clipnorm`, ...).

    Example:
    >>> model = keras_clip.CLIPModel.from_preset("tiny-vit")
    >>> optimizer = CLIPAdamW(learning_rate=5e-4, weight_decay=0.2, beta_2=0.98,
    ...                       head_variables=model.head_variables)
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
        head_variables=None,
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
        self.head_variables = None  # paths, for the config
        self._head_ids = None  # the variables themselves, when given
        if head_variables is not None:
            head_variables = list(head_variables)
            self.head_variables = sorted(
                {v if isinstance(v, str) else v.path for v in head_variables})
            if not any(isinstance(v, str) for v in head_variables):
                self._head_ids = {id(v) for v in head_variables}

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        # Python lists indexed like the moments: fixed at trace time.
        self._decays = [decays(v) for v in var_list]
        self._rate_scales = [
            1.0 if self.is_head(v) else self.tower_learning_rate_scale for v in var_list
        ]

    def is_head(self, variable):
        """Whether `variable` keeps the full learning rate.

        By identity when built with the variables; by path once restored
        from a config (tower variable paths are not tower-qualified, so
        a path names the same-named variable of either tower: the towers'
        heads share theirs, `projection/kernel`).
        """
        if self._head_ids is not None:
            return id(variable) in self._head_ids
        if self.head_variables is None:
            return _saved_is_head(variable.path)
        return variable.path in self.head_variables

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
            "head_variables": self.head_variables,
        })
        return config
