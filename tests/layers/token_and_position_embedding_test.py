import numpy as np
import pytest

from keras_clip.layers.token_and_position_embedding import TokenAndPositionEmbedding
from tests.helpers import assert_layer_round_trip, to_numpy


def test_is_lookup_plus_positions():
    layer = TokenAndPositionEmbedding(50, context_length=6, hidden_dim=4)
    ids = np.array([[3, 7, 1, 0, 0, 0]], "int32")
    out = to_numpy(layer(ids))
    table = to_numpy(layer.token_embedding)
    expected = table[ids] + to_numpy(layer.position_embedding)[None]
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_shorter_sequences_take_leading_positions():
    layer = TokenAndPositionEmbedding(50, context_length=6, hidden_dim=4)
    ids = np.array([[3, 7, 1]], "int32")
    long_ids = np.array([[3, 7, 1, 0, 0, 0]], "int32")
    np.testing.assert_allclose(
        to_numpy(layer(ids)), to_numpy(layer(long_ids))[:, :3], atol=1e-6
    )


def test_init_stds_follow_the_paper():
    layer = TokenAndPositionEmbedding(4000, context_length=77, hidden_dim=64)
    layer.build((None, 77))
    assert abs(np.std(to_numpy(layer.token_embedding)) - 0.02) < 0.002
    assert abs(np.std(to_numpy(layer.position_embedding)) - 0.01) < 0.001


def test_rejects_ids_wider_than_context():
    layer = TokenAndPositionEmbedding(50, context_length=4, hidden_dim=4)
    with pytest.raises(ValueError, match="context length is 4"):
        layer(np.zeros((1, 5), "int32"))


def test_config_round_trip():
    layer = TokenAndPositionEmbedding(30, context_length=5, hidden_dim=3)
    assert_layer_round_trip(layer, np.array([[1, 2, 3, 4, 5]], "int32"))
