"""The chunked loss and its closed-form gradients equal the dense loss under autodiff.

The reference is `jax.grad` of the dense symmetric cross-entropy over the
whole `(N, N)` logit matrix (JAX is a test dependency, so the reference is
the same on every backend); the tolerance is 1e-5 relative to the largest
gradient entry, at N = 4,096.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from keras_clip.losses.chunked_contrastive_loss import contrastive_loss_and_gradients
from keras_clip.losses.contrastive_loss import contrastive_logits, top1_hits
from tests.helpers import recorded_logit_shapes, to_numpy

LOG_SCALE = np.float32(np.log(1 / 0.07))


def unit_rows(rng, n, d):
    x = rng.normal(size=(n, d)).astype("float32")
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def dense_loss(image, text, log_scale):
    logits = jnp.exp(log_scale) * image @ text.T
    diagonal = jnp.diagonal(logits)
    image_loss = jax.nn.logsumexp(logits, axis=1) - diagonal
    text_loss = jax.nn.logsumexp(logits, axis=0) - diagonal
    return (image_loss.mean() + text_loss.mean()) / 2


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    # Correlated pairs, so the loss is not near its chance value everywhere.
    image = unit_rows(rng, 4096, 32)
    text = image + 1.5 * unit_rows(rng, 4096, 32)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    loss, gradients = jax.value_and_grad(dense_loss, argnums=(0, 1, 2))(image, text, LOG_SCALE)
    return image, text, float(loss), [np.asarray(g) for g in gradients]


def assert_close(got, expected):
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


def test_loss_and_gradients_equal_the_dense_ones_at_4096(batch):
    image, text, loss, (image_gradient, text_gradient, scale_gradient) = batch
    # 4096 rows in chunks of 384: the last chunk overlaps the one before it.
    found = {key: to_numpy(value) for key, value in
             contrastive_loss_and_gradients(image, text, LOG_SCALE, chunk_size=384).items()}
    np.testing.assert_allclose(found["loss"], loss, rtol=1e-5)
    assert_close(found["image_rows"] + found["image_columns"], image_gradient)
    assert_close(found["text_rows"] + found["text_columns"], text_gradient)
    np.testing.assert_allclose(found["logit_scale"], scale_gradient, rtol=1e-5)
    logits_per_image, logits_per_text, labels = contrastive_logits(image, text, LOG_SCALE)
    for name, logits in (("image_hits", logits_per_image), ("text_hits", logits_per_text)):
        np.testing.assert_array_equal(found[name], to_numpy(top1_hits(logits, labels)))
    assert 0.05 < found["image_hits"].mean() < 0.95  # a loss away from both ends


def test_replicas_shares_add_up_to_the_global_gradient(batch):
    # Two replicas score their 2,048 rows against all 4,096 columns, each
    # with half the weight; their row gradients plus both replicas' column
    # gradients are the dense gradient of the global batch's loss.
    image, text, loss, (image_gradient, text_gradient, _) = batch
    half = len(image) // 2
    image_total, text_total, losses = np.zeros_like(image), np.zeros_like(text), []
    for offset in (0, half):
        rows = slice(offset, offset + half)
        found = {key: to_numpy(value) for key, value in contrastive_loss_and_gradients(
            image[rows], text[rows], LOG_SCALE, image, text, offset, loss_weight=0.5).items()}
        image_total[rows] += found["image_rows"]
        text_total[rows] += found["text_rows"]
        image_total += found["image_columns"]
        text_total += found["text_columns"]
        losses.append(found["loss"])
    np.testing.assert_allclose(np.mean(losses), loss, rtol=1e-5)
    assert_close(image_total, image_gradient)
    assert_close(text_total, text_gradient)


def test_no_more_than_a_chunk_of_logits_is_held(batch, monkeypatch):
    image, text, _, _ = batch
    shapes = recorded_logit_shapes(monkeypatch)
    contrastive_loss_and_gradients(image[:1000], text[:1000], LOG_SCALE, chunk_size=256)
    assert set(shapes) == {(256, 1000)}
