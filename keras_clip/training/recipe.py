"""The paper's optimisation recipe, built from a `TrainConfig`."""

import keras

from keras_clip.training.clip_adamw import CLIPAdamW


def learning_rate_schedule(peak, warmup_steps, total_steps):
    """Linear warm-up from 0 to `peak`, then cosine decay to 0 at `total_steps`."""
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        decay_steps=max(total_steps - warmup_steps, 1),
        alpha=0.0,
        warmup_target=peak,
        warmup_steps=warmup_steps,
    )


def check_precision_runs_here(precision):
    """Refuses a precision this backend and device cannot train in."""
    if precision != "mixed_float16" or keras.backend.backend() != "jax":
        return
    import jax

    if jax.default_backend() == "cpu":
        raise ValueError(
            "precision 'mixed_float16' needs a GPU on the JAX backend: XLA's CPU "
            "matrix multiplications have no float16 kernel. Use 'mixed_bfloat16' "
            "on CPUs and TPUs."
        )


def adam_defaults(config, model):
    """`{"beta_2", "epsilon"}`: the config's, else what the image tower declares."""
    declared = model.image_encoder.optimizer_defaults
    return {key: declared[key] if getattr(config, key) is None else getattr(config, key)
            for key in ("beta_2", "epsilon")}


def make_optimizer(config, model, total_steps):
    """`CLIPAdamW` with the schedule, betas and clipping of `config`."""
    adam = adam_defaults(config, model)
    optimizer = CLIPAdamW(
        learning_rate=learning_rate_schedule(
            config.learning_rate, config.warmup_steps, total_steps
        ),
        weight_decay=config.weight_decay,
        beta_1=config.beta_1,
        beta_2=adam["beta_2"],
        epsilon=adam["epsilon"],
        tower_learning_rate_scale=config.tower_learning_rate_scale,
        head_variables=model.head_variables,
        global_clipnorm=config.gradient_clip_norm,
    )
    if config.precision == "mixed_float16":
        # float16 gradients underflow without it; bfloat16 has float32's range.
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
