import numpy as np
import pytest

from keras_clip.layers.patch_embedding import PatchEmbedding
from tests.helpers import assert_layer_round_trip, to_numpy


def test_matches_numpy_patchify():
    layer = PatchEmbedding(image_size=8, patch_size=4, hidden_dim=5)
    images = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    out = to_numpy(layer(images))
    kernel = to_numpy(layer.conv.kernel).reshape(4 * 4 * 3, 5)
    patches = images.reshape(2, 2, 4, 2, 4, 3).transpose(0, 1, 3, 2, 4, 5)
    patches = patches.reshape(2, 4, 4 * 4 * 3)  # (B, grid*grid, patch*patch*3)
    expected = np.concatenate(
        [np.broadcast_to(to_numpy(layer.class_embedding), (2, 1, 5)), patches @ kernel],
        axis=1,
    ) + to_numpy(layer.position_embedding)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


def test_patchify_has_no_bias():
    layer = PatchEmbedding(image_size=8, patch_size=4, hidden_dim=5)
    layer.build((None, 8, 8, 3))
    assert layer.conv.bias is None


def test_rejects_indivisible_image_size():
    with pytest.raises(ValueError, match="divisible by patch_size"):
        PatchEmbedding(image_size=30, patch_size=8, hidden_dim=4)


def test_rejects_wrong_image_shape():
    layer = PatchEmbedding(image_size=8, patch_size=4, hidden_dim=4)
    with pytest.raises(ValueError, match="expects images of shape"):
        layer(np.zeros((1, 12, 12, 3), "float32"))


def test_config_round_trip():
    layer = PatchEmbedding(image_size=8, patch_size=2, hidden_dim=4)
    assert_layer_round_trip(layer, np.ones((1, 8, 8, 3), "float32"))
