"""FLIP's patch dropout: a ViT trains on a random subset of its patches."""

import keras
from keras import ops

SEED_STATE = "seed_state"


def kept_patches(num_patches, rate):
    """How many of `num_patches` a `rate` keeps: `⌊num_patches · (1 − rate)⌋`, at least 1."""
    return max(1, int(num_patches * (1.0 - rate)))


def process_share():
    """`(processes, index)` of a torch.distributed run; `(1, 0)` otherwise.

    Only PyTorch runs one training program per process on its own part of
    the batch; JAX's processes trace one program over the global batch, and
    tf.distribute's replicas are refused (`train`).
    """
    if keras.backend.backend() != "torch":
        return 1, 0
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def check_rate(rate, name="patch_dropout"):
    """Raises unless `rate` is a number in [0, 1)."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
        raise ValueError(f"{name} must be a number in [0, 1), got {rate!r}.")


@keras.saving.register_keras_serializable(package="keras_clip")
class PatchDropout(keras.layers.Layer):
    """Drops a fraction of the patch tokens of each example while training.

    Li et al. (2023, FLIP) mask ~50% of a ViT's patches at random while
    pre-training CLIP: each step costs about half as much and sees as many
    images, for a small loss of accuracy. Each example keeps its own random
    `⌊P · (1 − rate)⌋` of its `P` patch tokens, in their original order; the
    first `num_leading` tokens (the class token) are always kept. Outside
    training, and at rate 0, tokens pass unchanged. Positions must be added
    before this layer: they are what tell the kept patches apart.

    Args:
        rate: float in [0, 1). Fraction of patches dropped per example.
        num_leading: int. Leading tokens never dropped (1: a class token).
        seed: int or None. Seed of the layer's random draws.

    Example:
    >>> layer = PatchDropout(rate=0.5)
    >>> tuple(layer(np.zeros((2, 17, 8)), training=True).shape)
    (2, 9, 8)
    >>> tuple(layer(np.zeros((2, 17, 8))).shape)
    (2, 17, 8)
    """

    def __init__(self, rate=0.0, num_leading=1, seed=None, **kwargs):
        super().__init__(**kwargs)
        check_rate(rate)
        self.rate = float(rate)
        self.num_leading = num_leading
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, tokens, training=None):
        if not training or not self.rate:
            return tokens
        num_patches = tokens.shape[1] - self.num_leading
        keep = kept_patches(num_patches, self.rate)
        leading, patches = tokens[:, : self.num_leading], tokens[:, self.num_leading:]
        noise = self.draw_noise(ops.shape(tokens)[0], num_patches)
        # The `keep` largest of uniform noise: a uniformly random subset.
        kept = ops.sort(ops.top_k(noise, keep, sorted=False)[1], axis=-1)  # (B, keep)
        kept = ops.broadcast_to(kept[:, :, None], (*ops.shape(kept), tokens.shape[-1]))
        patches = ops.take_along_axis(patches, kept, axis=1)  # (B, keep, width)
        return ops.concatenate([leading, patches], axis=1)

    def draw_noise(self, batch_size, num_patches):
        """Uniform noise for this process's `batch_size` rows.

        Under torch.distributed every process starts from the same seed
        state and holds its own part of the global batch: each draws the
        noise of all the processes' rows and keeps its own, so no two
        processes drop the same patches, and the seed state stays the same
        in every process (the one a checkpoint saves).
        """
        processes, index = process_share()
        noise = keras.random.uniform((processes * batch_size, num_patches),
                                     seed=self.seed_generator)
        return noise[index * batch_size:(index + 1) * batch_size] if processes > 1 else noise

    # Keras saves no seed generator's state: kept here, so that a resumed
    # run drops the patches the uninterrupted one would have dropped.
    # Files without it (saved before this layer existed) load as they are.
    def save_own_variables(self, store):
        store[SEED_STATE] = self.seed_generator.state.numpy()

    def load_own_variables(self, store):
        if SEED_STATE in store.keys():
            self.seed_generator.state.assign(store[SEED_STATE])

    def compute_output_shape(self, input_shape):
        # Symbolic calls are inference calls: every token is kept.
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "num_leading": self.num_leading, "seed": self.seed})
        return config
