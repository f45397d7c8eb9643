"""SigLIP's sigmoid objective against OpenCLIP's `SigLipLoss`, dense and chunked.

The reference is OpenCLIP's unmodified `SigLipLoss` (installed from PyPI,
see `.ci/run`) and torch autograd of it; it runs beside every backend. The
tolerance is 1e-5, relative to the loss and to the largest gradient entry.
"""

import math

import numpy as np
import pytest

from keras_clip.losses import SigmoidObjective, chunked_rows, get_objective
from keras_clip.losses.contrastive_loss import scaled_logits, top1_hits
from tests.convert.references import open_clip_loss_module
from tests.helpers import recorded_logit_shapes, to_numpy

# (log scale, bias): the paper's start, a trained model's, and neither.
WEIGHTS = [(math.log(10.0), -10.0), (math.log(100.0), -5.0), (0.0, 0.0)]


def unit_rows(rng, n, d):
    x = rng.normal(size=(n, d)).astype("float32")
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def correlated_pairs(n, d=32, seed=0):
    # Correlated pairs, so the loss is not near its chance value everywhere.
    rng = np.random.default_rng(seed)
    image = unit_rows(rng, n, d)
    text = image + 1.5 * unit_rows(rng, n, d)
    return image, text / np.linalg.norm(text, axis=1, keepdims=True)


def open_clip_loss(image, text, log_scale, bias):
    """OpenCLIP's loss of the whole batch and its gradients, from torch autograd."""
    import torch

    tensors = [torch.tensor(np.asarray(x, "float32"), requires_grad=True)
               for x in (image, text, log_scale, bias)]
    image_t, text_t, scale_t, bias_t = tensors
    loss = open_clip_loss_module().SigLipLoss()(image_t, text_t, scale_t.exp(), bias_t)
    loss.backward()
    names = ("image_embeddings", "text_embeddings", "logit_scale", "logit_bias")
    return float(loss.detach()), {name: t.grad.numpy() for name, t in zip(names, tensors)}


def weights_of(log_scale, bias):
    return {"logit_scale": np.float32(log_scale), "logit_bias": np.float32(bias)}


def assert_gradients_close(found, expected):
    for name, value in expected.items():
        np.testing.assert_allclose(to_numpy(found[name]), value, rtol=0,
                                   atol=1e-5 * np.abs(value).max(), err_msg=name)


@pytest.mark.parametrize("log_scale, bias", WEIGHTS)
def test_loss_and_gradients_equal_open_clips(log_scale, bias):
    image, text = correlated_pairs(64)
    objective, weights = SigmoidObjective(), weights_of(log_scale, bias)
    loss, gradients = open_clip_loss(image, text, log_scale, bias)
    dense, _, replicas = objective.loss(weights, image, text)
    assert replicas == 1
    np.testing.assert_allclose(float(to_numpy(dense)), loss, rtol=1e-5)
    # Chunks of 24 rows: the last one overlaps the one before it.
    chunked, _, _, found = objective.loss_and_gradients(weights, image, text, chunk_size=24)
    np.testing.assert_allclose(float(to_numpy(chunked)), loss, rtol=1e-5)
    assert_gradients_close(found, gradients)


def test_chunked_equals_open_clip_at_4096():
    image, text = correlated_pairs(4096)
    loss, gradients = open_clip_loss(image, text, *WEIGHTS[1])
    chunked, metrics, _, found = SigmoidObjective().loss_and_gradients(
        weights_of(*WEIGHTS[1]), image, text, chunk_size=384)
    np.testing.assert_allclose(float(to_numpy(chunked)), loss, rtol=1e-5)
    assert_gradients_close(found, gradients)
    # Both ways' top-1 hits are those of the dense logits.
    logits = to_numpy(scaled_logits(image, text, WEIGHTS[1][0], WEIGHTS[1][1]))
    labels = np.arange(4096, dtype="int32")
    for name, dense in (("image_to_text_accuracy", logits), ("text_to_image_accuracy", logits.T)):
        np.testing.assert_array_equal(to_numpy(metrics[name]), to_numpy(top1_hits(dense, labels)))
    assert 0.05 < to_numpy(metrics["image_to_text_accuracy"]).mean() < 0.95


def test_replicas_shares_are_the_global_batchs_loss_and_gradients():
    # Two replicas score their 32 images against all 64 captions, each with
    # half the weight: their mean loss is the global loss, and their image
    # rows' gradients and both replicas' caption gradients are its gradients.
    image, text = correlated_pairs(64, seed=1)
    log_scale, bias = WEIGHTS[0]
    loss, gradients = open_clip_loss(image, text, log_scale, bias)
    scale = np.exp(log_scale)
    losses, image_total, text_total = [], np.zeros_like(image), np.zeros_like(text)
    scale_total = bias_total = 0.0
    for offset in (0, 32):
        rows = slice(offset, offset + 32)
        found = chunked_rows.rows_loss_and_gradients(
            image[rows], text, log_scale, offset, 0.5 / 32, 16, chunked_rows.pairwise_sigmoid,
            logit_bias=bias)
        losses.append(float(to_numpy(found["loss_sum"])) / 32)
        image_total[rows] += to_numpy(found["queries"])
        text_total += to_numpy(found["keys"])
        scale_total += float(to_numpy(found["logit_scale"]))
        bias_total += float(to_numpy(found["logit_bias"]))
        # The dense loss of the same rows against all captions, with labels offset.
        logits = scale * image[rows] @ text.T + bias
        signs = -np.ones_like(logits)
        signs[np.arange(32), offset + np.arange(32)] = 1.0
        dense = np.sum(np.logaddexp(0.0, -signs * logits)) / 32
        np.testing.assert_allclose(losses[-1], dense, rtol=1e-5)
    np.testing.assert_allclose(np.mean(losses), loss, rtol=1e-5)
    assert_gradients_close({"image_embeddings": image_total, "text_embeddings": text_total,
                            "logit_scale": scale_total, "logit_bias": bias_total}, gradients)


def test_the_objectives_replica_shares_add_up_to_the_global_gradients(monkeypatch):
    # SigmoidObjective.loss_and_gradients as each of two replicas runs it:
    # the gather gives it the global batch and its offset; the cross-replica
    # sum of the caption gradients is what both replicas' calls computed.
    from keras_clip.losses import sigmoid_objective

    image, text = correlated_pairs(64, seed=2)
    loss, gradients = open_clip_loss(image, text, *WEIGHTS[1])
    objective, weights = SigmoidObjective(), weights_of(*WEIGHTS[1])

    def as_replica(offset, column_sum):
        monkeypatch.setattr(sigmoid_objective, "gather_across_replicas",
                            lambda i, t: (image, text, offset, 2))
        monkeypatch.setattr(sigmoid_objective, "sum_across_replicas", column_sum)
        rows = slice(offset, offset + 32)
        return objective.loss_and_gradients(weights, image[rows], text[rows], chunk_size=24)

    columns = []  # each replica's caption gradients, before the sum
    for offset in (0, 32):
        as_replica(offset, lambda keys: (columns.append(to_numpy(keys)) or keys,))
    total = columns[0] + columns[1]
    found = [as_replica(offset, lambda keys: (total,)) for offset in (0, 32)]
    np.testing.assert_allclose(np.mean([float(to_numpy(f[0])) for f in found]), loss, rtol=1e-5)
    assert all(f[2] == 2 for f in found)
    joined = {name: np.concatenate([to_numpy(f[3][name]) for f in found])
              for name in ("image_embeddings", "text_embeddings")}
    # Each replica's share of the scale and bias gradients; the optimizer sums them.
    for name in ("logit_scale", "logit_bias"):
        joined[name] = sum(float(to_numpy(f[3][name])) for f in found)
    assert_gradients_close(joined, gradients)


def test_no_more_than_a_chunk_of_logits_is_held(monkeypatch):
    image, text = correlated_pairs(1000)
    shapes = recorded_logit_shapes(monkeypatch)
    SigmoidObjective().loss_and_gradients(weights_of(*WEIGHTS[0]), image, text, chunk_size=256)
    assert set(shapes) == {(256, 1000)}


def test_served_probabilities_are_each_pairs_sigmoid():
    objective = get_objective("sigmoid")
    logits = np.array([[2.0, -1.0, 0.0]], "float32")
    np.testing.assert_allclose(to_numpy(objective.probabilities(logits)),
                               1 / (1 + np.exp(-logits)), rtol=1e-6)
    # Unlike a softmax, a row need not add up to one.
    assert abs(float(to_numpy(objective.probabilities(logits)).sum()) - 1.0) > 0.1


def test_the_objective_round_trips_through_its_config():
    import keras

    objective = SigmoidObjective(logit_scale_init=1.0, logit_bias_init=-3.0,
                                 max_logit_scale=math.log(50.0))
    restored = get_objective(keras.saving.serialize_keras_object(objective))
    assert isinstance(restored, SigmoidObjective)
    assert restored.get_config() == objective.get_config()


def test_the_cli_offers_every_objective():
    from keras_clip.commands.data_commands import OBJECTIVE_NAMES
    from keras_clip.losses import OBJECTIVES

    assert OBJECTIVE_NAMES == tuple(OBJECTIVES)
