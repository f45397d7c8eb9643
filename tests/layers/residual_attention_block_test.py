import keras
import numpy as np

from keras_clip.layers.residual_attention_block import ResidualAttentionBlock
from tests.helpers import assert_layer_round_trip, to_numpy


def test_preserves_shape():
    block = ResidualAttentionBlock(hidden_dim=16, num_heads=2, num_layers=2)
    assert tuple(block(np.zeros((3, 7, 16), "float32")).shape) == (3, 7, 16)


def test_residual_projections_shrink_with_depth():
    # The paper's init: output projections std = width^-0.5 * (2 * layers)^-0.5.
    width, layers = 64, 8
    block = ResidualAttentionBlock(hidden_dim=width, num_heads=2, num_layers=layers)
    block.build((1, 4, width))
    expected = width**-0.5 * (2 * layers) ** -0.5
    for kernel in (block.attn.out_proj.kernel, block.mlp_proj.kernel):
        assert abs(np.std(to_numpy(kernel)) - expected) < 0.1 * expected
    fc_std = np.std(to_numpy(block.mlp_fc.kernel))
    assert abs(fc_std - (2 * width) ** -0.5) < 0.1 * (2 * width) ** -0.5


def test_layer_norm_epsilon_is_pytorch_default():
    block = ResidualAttentionBlock(hidden_dim=8, num_heads=2, num_layers=1)
    assert block.ln_1.epsilon == block.ln_2.epsilon == 1e-5


def test_activation_changes_output():
    x = np.random.default_rng(0).normal(size=(1, 3, 8)).astype("float32")
    quick = ResidualAttentionBlock(hidden_dim=8, num_heads=2, num_layers=1)
    exact = ResidualAttentionBlock(
        hidden_dim=8, num_heads=2, num_layers=1, activation="gelu"
    )
    quick(x), exact(x)
    exact.set_weights(quick.get_weights())
    assert not np.allclose(to_numpy(quick(x)), to_numpy(exact(x)), atol=1e-6)


def test_config_round_trip():
    block = ResidualAttentionBlock(
        hidden_dim=8, num_heads=2, num_layers=3, mlp_ratio=2, activation="gelu",
        causal=True,
    )
    assert_layer_round_trip(block, keras.random.normal((2, 4, 8)))
