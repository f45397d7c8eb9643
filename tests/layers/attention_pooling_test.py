import numpy as np
import pytest

from keras_clip.layers.attention_pooling import AttentionPooling
from tests.helpers import assert_layer_round_trip, to_numpy


def reference_pooling(x, layer):
    """Attention pooling in NumPy: the mean token queries all tokens."""
    w = {v.path.split("/")[-2] + "/" + v.name: to_numpy(v) for v in layer.weights}
    batch, size, _, channels = x.shape
    heads, head_dim = layer.num_heads, channels // layer.num_heads
    tokens = x.reshape(batch, size * size, channels)
    tokens = np.concatenate([tokens.mean(1, keepdims=True), tokens], 1)
    tokens = tokens + to_numpy(layer.position_embedding)

    def project(name, t):
        t = t @ w[f"{name}/kernel"] + w[f"{name}/bias"]
        return t.reshape(batch, -1, heads, head_dim).transpose(0, 2, 1, 3)

    q, k, v = project("q_proj", tokens[:, :1]), project("k_proj", tokens), project(
        "v_proj", tokens
    )
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(head_dim)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    out = (weights @ v).reshape(batch, channels)
    return out @ w["c_proj/kernel"] + w["c_proj/bias"]


def test_matches_numpy_reference():
    layer = AttentionPooling(spatial_size=3, hidden_dim=8, num_heads=2, output_dim=5)
    x = np.random.default_rng(0).normal(size=(2, 3, 3, 8)).astype("float32")
    np.testing.assert_allclose(
        to_numpy(layer(x)), reference_pooling(x, layer), rtol=1e-4, atol=1e-5
    )


def test_position_embedding_covers_mean_token():
    layer = AttentionPooling(spatial_size=7, hidden_dim=8, num_heads=2, output_dim=4)
    layer.build((None, 7, 7, 8))
    assert tuple(layer.position_embedding.shape) == (50, 8)


def test_rejects_width_not_divisible_by_heads():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        AttentionPooling(spatial_size=2, hidden_dim=10, num_heads=4, output_dim=4)


def test_config_round_trip():
    layer = AttentionPooling(spatial_size=2, hidden_dim=8, num_heads=4, output_dim=3)
    assert_layer_round_trip(layer, np.ones((2, 2, 2, 8), "float32"))
