import numpy as np

from keras_clip.layers.bottleneck import Bottleneck
from tests.helpers import assert_layer_round_trip, to_numpy


def test_output_shapes():
    assert tuple(Bottleneck(4, stride=1)(np.zeros((2, 8, 8, 16), "float32")).shape) == (
        2, 8, 8, 16,
    )
    assert tuple(Bottleneck(4, stride=2)(np.zeros((2, 8, 8, 8), "float32")).shape) == (
        2, 4, 4, 16,
    )


def test_starts_as_identity():
    # bn3's gain starts at zero, so a block without downsampling maps a
    # non-negative input to itself: relu(0 + x) = x.
    block = Bottleneck(4)
    x = np.abs(np.random.default_rng(0).normal(size=(2, 6, 6, 16))).astype("float32")
    np.testing.assert_allclose(to_numpy(block(x, training=False)), x, atol=1e-6)
    np.testing.assert_array_equal(to_numpy(block.bn3.gamma), 0.0)


def test_downsamples_by_average_pooling_on_both_paths():
    block = Bottleneck(2, stride=2)
    block.build((None, 4, 4, 8))
    assert block.pool is not None and block.downsample_conv is not None
    # Every convolution keeps stride 1: the pool does the downsampling.
    for conv in (block.conv1, block.conv2, block.conv3, block.downsample_conv):
        assert tuple(conv.strides) == (1, 1)
        assert conv.bias is None


def test_no_shortcut_projection_when_shapes_match():
    block = Bottleneck(4)
    block.build((None, 4, 4, 16))
    assert block.downsample_conv is None


def test_config_round_trip():
    assert_layer_round_trip(Bottleneck(2, stride=2), np.ones((1, 4, 4, 3), "float32"))
