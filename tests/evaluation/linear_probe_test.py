import numpy as np
import pytest

from keras_clip.evaluation.linear_probe import linear_probe


def test_probe_picks_c_on_validation_and_matches_a_direct_fit():
    from sklearn import linear_model as sklearn  # in the test extra: never skipped
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 8)) * 2
    labels = rng.integers(0, 3, 300)
    features = centres[labels] + rng.normal(size=(300, 8))
    result = linear_probe(features[:200], labels[:200], features[200:], labels[200:],
                          cs=(0.001, 1.0, 100.0))
    assert result["C"] in (0.001, 1.0, 100.0)
    assert result["validation_accuracy"][result["C"]] == max(
        result["validation_accuracy"].values())
    direct = sklearn.LogisticRegression(C=result["C"], max_iter=1000).fit(
        features[:200], labels[:200])
    assert result["accuracy"] == pytest.approx(direct.score(features[200:], labels[200:]))
    assert result["accuracy"] > 0.8  # separable clusters; chance is 1/3
