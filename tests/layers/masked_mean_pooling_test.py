import numpy as np

from keras_clip.layers.masked_mean_pooling import MaskedMeanPooling
from tests.helpers import assert_layer_round_trip, to_numpy


def test_averages_non_padding_tokens_only():
    hidden = np.random.default_rng(0).normal(size=(3, 4, 2)).astype("float32")
    ids = np.array([[5, 6, 0, 0], [5, 0, 0, 0], [0, 0, 0, 0]], "int32")
    out = to_numpy(MaskedMeanPooling()(hidden, ids))
    np.testing.assert_allclose(out[0], hidden[0, :2].mean(0), atol=1e-6)
    np.testing.assert_allclose(out[1], hidden[1, 0], atol=1e-6)
    np.testing.assert_array_equal(out[2], 0.0)  # all padding: zeros, not NaN


def test_config_round_trip():
    hidden = np.ones((1, 3, 2), "float32")
    assert_layer_round_trip(MaskedMeanPooling(padding_id=9), hidden, np.array([[1, 9, 9]]))
