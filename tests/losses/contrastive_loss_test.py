import numpy as np

from keras_clip.losses.contrastive_loss import (
    contrastive_logits,
    contrastive_loss,
    top1_hits,
)
from tests.helpers import to_numpy


def unit_rows(rng, n, d):
    x = rng.normal(size=(n, d)).astype("float32")
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def reference_loss(image, text, log_scale):
    """Symmetric cross-entropy of Radford et al. (2021), figure 3, in NumPy."""
    logits = np.exp(log_scale) * image @ text.T

    def cross_entropy(logits):
        z = logits.astype("float64")
        top = z.max(1, keepdims=True)
        log_softmax = z - np.log(np.exp(z - top).sum(1, keepdims=True)) - top
        return -np.mean(np.diag(log_softmax))

    return (cross_entropy(logits) + cross_entropy(logits.T)) / 2


def test_matches_numpy_reference():
    rng = np.random.default_rng(0)
    image, text = unit_rows(rng, 6, 8), unit_rows(rng, 6, 8)
    for log_scale in (0.0, np.log(1 / 0.07), np.log(100.0)):
        loss = contrastive_loss(*contrastive_logits(image, text, log_scale))
        np.testing.assert_allclose(
            float(to_numpy(loss)), reference_loss(image, text, log_scale), rtol=1e-5
        )


def test_local_rows_against_global_columns_average_to_global_loss():
    # Two "replicas" each score their 3 rows against all 6 columns with the
    # labels offset by their position; the mean of their losses is the loss
    # of the whole batch.
    rng = np.random.default_rng(1)
    image, text = unit_rows(rng, 6, 8), unit_rows(rng, 6, 8)
    parts = []
    for offset in (0, 3):
        rows = slice(offset, offset + 3)
        logits = contrastive_logits(image[rows], text[rows], 2.0, image, text, offset)
        np.testing.assert_array_equal(to_numpy(logits[2]), np.arange(offset, offset + 3))
        parts.append(float(to_numpy(contrastive_loss(*logits))))
    np.testing.assert_allclose(np.mean(parts), reference_loss(image, text, 2.0), rtol=1e-5)


def test_top1_hits():
    logits = np.array([[3.0, 1.0, 0.0], [0.0, 1.0, 2.0]], "float32")
    labels = np.array([0, 1], "int32")
    np.testing.assert_array_equal(to_numpy(top1_hits(logits, labels)), [1.0, 0.0])
