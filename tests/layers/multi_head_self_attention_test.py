import keras
import numpy as np
import pytest

from keras_clip.layers.multi_head_self_attention import (
    MultiHeadSelfAttention,
    heads_first_attention,
)
from tests.helpers import assert_layer_round_trip, to_numpy


def reference_attention(x, layer):
    """Multi-head attention in NumPy from the layer's weights."""
    w_in, b_in, w_out, b_out = [to_numpy(w) for w in layer.weights]
    batch, length, width = x.shape
    heads, head_dim = layer.num_heads, width // layer.num_heads
    q, k, v = np.split(x @ w_in + b_in, 3, axis=-1)

    def split(t):
        return t.reshape(batch, length, heads, head_dim).transpose(0, 2, 1, 3)

    scores = split(q) @ split(k).transpose(0, 1, 3, 2) / np.sqrt(head_dim)
    if layer.causal:
        scores = np.where(np.tril(np.ones((length, length), bool)), scores, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    out = (weights @ split(v)).transpose(0, 2, 1, 3).reshape(batch, length, width)
    return out @ w_out + b_out


@pytest.mark.parametrize("causal", [False, True])
def test_matches_numpy_reference(causal):
    layer = MultiHeadSelfAttention(hidden_dim=16, num_heads=4, causal=causal)
    x = np.random.default_rng(0).normal(size=(2, 5, 16)).astype("float32")
    np.testing.assert_allclose(
        to_numpy(layer(x)), reference_attention(x, layer), rtol=1e-4, atol=1e-5
    )


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="the heads-first layout is TensorFlow's (export) path only")
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_heads_first_layout_for_export_matches_the_default(causal, dtype, monkeypatch):
    layer = MultiHeadSelfAttention(hidden_dim=16, num_heads=4, causal=causal, dtype=dtype)
    x = np.random.default_rng(2).normal(size=(2, 5, 16)).astype("float32")
    default = to_numpy(layer(x)).astype("float32")
    calls = []
    original = MultiHeadSelfAttention._heads_first_attention
    monkeypatch.setattr(MultiHeadSelfAttention, "_heads_first_attention",
                        lambda self, qkv: calls.append(1) or original(self, qkv))
    with heads_first_attention(layer):
        heads_first = to_numpy(layer(x)).astype("float32")
    assert calls == [1]
    explicit = MultiHeadSelfAttention.from_config({**layer.get_config(), "heads_first": True})
    explicit.build(x.shape)
    explicit.set_weights(layer.get_weights())
    np.testing.assert_array_equal(to_numpy(explicit(x)).astype("float32"), heads_first)
    assert calls == [1, 1]
    if dtype == "float32":
        np.testing.assert_allclose(heads_first, reference_attention(x, layer),
                                   rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(heads_first, default, rtol=1e-5, atol=1e-6)
    else:  # same bf16 roundings in both layouts
        np.testing.assert_allclose(heads_first, default, rtol=0, atol=1e-2)
    with pytest.raises(RuntimeError), heads_first_attention(layer):
        raise RuntimeError
    layer(x)  # after the context, even one left by an error: the default path
    with heads_first_attention(layer, False):  # an XLA-compiled export keeps the default
        layer(x)
    assert calls == [1, 1] and not layer.heads_first


def test_causal_output_ignores_later_tokens():
    layer = MultiHeadSelfAttention(hidden_dim=16, num_heads=2, causal=True)
    x = np.random.default_rng(1).normal(size=(1, 6, 16)).astype("float32")
    changed = x.copy()
    changed[:, 4:] += 5.0
    np.testing.assert_allclose(
        to_numpy(layer(x))[:, :4], to_numpy(layer(changed))[:, :4], atol=1e-5
    )


def test_rejects_width_not_divisible_by_heads():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        MultiHeadSelfAttention(hidden_dim=10, num_heads=4)


def test_config_round_trip():
    layer = MultiHeadSelfAttention(
        hidden_dim=8, num_heads=2, causal=True, in_proj_std=0.1, out_proj_std=0.3
    )
    assert_layer_round_trip(layer, np.ones((2, 3, 8), "float32"))


def test_flash_attention_is_off_on_tpus_and_when_disabled(monkeypatch):
    from keras_clip.layers import multi_head_self_attention as attention

    assert attention.flash_attention() is None  # this CPU: Keras decides
    keras.config.disable_flash_attention()
    try:
        assert attention.flash_attention() is False
    finally:
        keras.config.enable_flash_attention()
    if keras.backend.backend() == "jax":
        import jax

        class TPU:
            platform = "tpu"

        monkeypatch.setattr(jax, "devices", lambda *args: [TPU()])
        assert attention.flash_attention() is False  # keras-team/keras#21116
