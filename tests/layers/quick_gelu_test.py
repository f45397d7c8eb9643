import keras
import numpy as np

from keras_clip.layers.quick_gelu import get_activation, quick_gelu
from tests.helpers import to_numpy


def test_matches_formula():
    x = np.linspace(-6, 6, 101).astype("float32")
    expected = x / (1 + np.exp(-1.702 * x))
    np.testing.assert_allclose(to_numpy(quick_gelu(x)), expected, rtol=1e-5, atol=1e-6)


def test_resolves_names():
    assert get_activation("quick_gelu") is quick_gelu
    assert get_activation("gelu") is keras.activations.gelu


def test_serialises_by_registered_name():
    serialized = keras.saving.serialize_keras_object(quick_gelu)
    assert keras.saving.deserialize_keras_object(serialized) is quick_gelu
