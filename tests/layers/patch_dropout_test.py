import numpy as np
import pytest

from keras_clip.layers import patch_dropout
from keras_clip.layers.patch_dropout import PatchDropout, kept_patches
from tests.helpers import assert_layer_round_trip, to_numpy


def numbered_tokens(batch, num_tokens, width=4):
    """Token `t` of every row holds `t` in every channel: outputs say which were kept."""
    tokens = np.arange(num_tokens, dtype="float32")[None, :, None]
    return np.broadcast_to(tokens, (batch, num_tokens, width)).copy()


@pytest.mark.parametrize("rate, num_leading, num_tokens", [
    (0.5, 1, 17), (0.75, 1, 50), (0.3, 0, 16), (0.99, 1, 10)])
def test_training_keeps_the_leading_tokens_and_a_random_ordered_subset(
        rate, num_leading, num_tokens):
    layer = PatchDropout(rate, num_leading=num_leading, seed=0)
    out = to_numpy(layer(numbered_tokens(64, num_tokens), training=True))
    keep = kept_patches(num_tokens - num_leading, rate)
    assert out.shape == (64, num_leading + keep, 4)
    assert keep == max(1, int((num_tokens - num_leading) * (1 - rate)))
    kept = out[:, :, 0]
    assert (out == kept[:, :, None]).all()  # whole tokens move, not channels
    np.testing.assert_array_equal(kept[:, :num_leading], np.arange(num_leading)[None].repeat(64, 0))
    patches = kept[:, num_leading:]
    assert (np.diff(patches, axis=1) > 0).all()  # distinct, in their original order
    assert patches.min() >= num_leading and patches.max() < num_tokens
    if keep < num_tokens - num_leading:
        assert len({tuple(row) for row in patches}) > 1  # each example draws its own


def test_every_patch_is_kept_equally_often():
    # 2,000 draws of 8 patches out of 16: each patch kept with probability 1/2,
    # so its count is Binomial(2000, 0.5): sd 22, and 5 sd is 112.
    layer = PatchDropout(0.5, seed=1)
    kept = to_numpy(layer(numbered_tokens(2000, 17, width=1), training=True))[:, 1:, 0]
    counts = np.bincount(kept.astype(int).ravel(), minlength=17)[1:]
    assert counts.sum() == 2000 * 8
    assert np.abs(counts - 1000).max() < 112, counts


def test_inference_and_rate_zero_keep_every_token():
    tokens = np.random.default_rng(0).normal(size=(3, 17, 8)).astype("float32")
    np.testing.assert_array_equal(to_numpy(PatchDropout(0.5)(tokens)), tokens)
    np.testing.assert_array_equal(to_numpy(PatchDropout(0.5)(tokens, training=False)), tokens)
    np.testing.assert_array_equal(to_numpy(PatchDropout(0.0)(tokens, training=True)), tokens)


def test_successive_calls_draw_new_patches():
    layer = PatchDropout(0.5, seed=0)
    tokens = numbered_tokens(8, 17)
    first, second = (to_numpy(layer(tokens, training=True)) for _ in range(2))
    assert not np.array_equal(first, second)


def test_each_process_drops_its_own_rows_of_the_global_draw(monkeypatch):
    # Under torch.distributed every process starts from the same seed state:
    # process i of 2 must drop what one device fed both halves drops for
    # half i, so the two processes never drop alike.
    tokens = numbered_tokens(16, 17)
    whole = to_numpy(PatchDropout(0.5, seed=4)(np.concatenate([tokens, tokens]), training=True))
    halves = []
    for index in range(2):
        monkeypatch.setattr(patch_dropout, "process_share", lambda index=index: (2, index))
        halves.append(to_numpy(PatchDropout(0.5, seed=4)(tokens, training=True)))
    np.testing.assert_array_equal(np.concatenate(halves), whole)
    assert not np.array_equal(*halves)


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5, True, "0.5", None])
def test_rejects_a_rate_outside_0_1(rate):
    with pytest.raises(ValueError, match=r"patch_dropout must be a number in \[0, 1\)"):
        PatchDropout(rate)


def test_round_trip():
    assert_layer_round_trip(PatchDropout(0.25, num_leading=0, seed=3),
                            np.zeros((2, 9, 4), "float32"))
