"""Fine-tuning controls: locking towers (LiT) and weight-space ensembling (WiSE-FT)."""

from keras import ops


def residual_blocks(encoder):
    """A tower's residual blocks in forward order, as it declares them."""
    return encoder.residual_blocks


def lock_tower(encoder, unlocked_blocks=0):
    """Freezes a tower, then unfreezes its last `unlocked_blocks` blocks.

    The tower's `lock` decides what "the last N blocks" covers; for the
    towers here, everything after the first unlocked block (later blocks,
    the final norm, pooling and projection) trains again, and
    `unlocked_blocks=0` locks the whole tower, projection included, as LiT
    does (Zhai et al., 2022). Frozen BatchNorms run in inference mode.
    """
    encoder.lock(unlocked_blocks)


def wise_ft(zero_shot, fine_tuned, alpha):
    """Weight-space ensemble `(1 - alpha) · zero_shot + alpha · fine_tuned`.

    Wortsman et al. (2022): interpolating a fine-tuned CLIP with the model
    it started from keeps much of the zero-shot model's robustness to
    distribution shift while keeping most of the fine-tuning gain. Returns a
    new model shaped like `fine_tuned`; `alpha=0` gives `zero_shot`'s
    weights and `alpha=1` `fine_tuned`'s, exactly. Non-float variables
    (counters) are taken from `fine_tuned`.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"WiSE-FT needs alpha in [0, 1], got {alpha}.")
    if len(zero_shot.weights) != len(fine_tuned.weights):
        raise ValueError("WiSE-FT needs two models of the same architecture.")
    ensemble = type(fine_tuned).from_config(fine_tuned.get_config())
    for target, start, end in zip(ensemble.weights, zero_shot.weights, fine_tuned.weights):
        if tuple(start.shape) != tuple(end.shape):
            raise ValueError(
                f"WiSE-FT needs two models of the same architecture: {start.path} "
                f"is {tuple(start.shape)} in one and {tuple(end.shape)} in the other."
            )
        if "float" in str(end.dtype):
            start_value = ops.cast(start.value, end.dtype)
            target.assign((1.0 - alpha) * start_value + alpha * end.value)
        else:
            target.assign(end.value)
    return ensemble
