"""Linear probe: logistic regression on frozen image features (needs scikit-learn).

As in the paper's appendix A.3: L-BFGS logistic regression, its inverse
regularisation strength `C` chosen by a sweep on a validation split of the
training features, then refit on all of them and scored on the test set.
"""

import numpy as np

DEFAULT_CS = tuple(10.0 ** p for p in range(-3, 4))


def linear_probe(train_features, train_labels, test_features, test_labels,
                 cs=DEFAULT_CS, validation_fraction=0.2, seed=0, max_iter=1000):
    """Returns `{"accuracy", "C", "validation_accuracy": {C: acc}}`."""
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError as error:
        raise ImportError(
            "The linear probe needs scikit-learn: pip install scikit-learn") from error
    train_features, train_labels = np.asarray(train_features), np.asarray(train_labels)
    order = np.random.default_rng(seed).permutation(len(train_labels))
    held = max(1, int(len(order) * validation_fraction))
    fit_rows, val_rows = order[held:], order[:held]

    def fit(c, rows):
        return LogisticRegression(C=c, max_iter=max_iter).fit(
            train_features[rows], train_labels[rows])

    sweep = {c: float(fit(c, fit_rows).score(train_features[val_rows], train_labels[val_rows]))
             for c in cs}
    best = max(sweep, key=lambda c: (sweep[c], -c))  # ties: the stronger regulariser
    model = fit(best, np.arange(len(train_labels)))
    return {"accuracy": float(model.score(test_features, test_labels)), "C": best,
            "validation_accuracy": sweep}
