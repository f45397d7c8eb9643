import numpy as np
import pytest

from keras_clip.evaluation import zero_shot


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_template_ensembling_is_mean_of_unit_vectors_renormalised():
    rng = np.random.default_rng(0)
    per_template = rng.normal(size=(3, 4, 8)).astype("float32") * 5  # not unit norm
    expected = np.stack([unit(unit(per_template[c]).mean(axis=0)) for c in range(3)])
    np.testing.assert_allclose(zero_shot.ensemble_class_embeddings(per_template), expected,
                               rtol=1e-6, atol=1e-7)


def test_constructed_embeddings_give_the_known_accuracy():
    classifier = np.eye(4, dtype="float32")  # class c points along axis c
    labels = np.array([0, 1, 2, 3, 0, 1])
    images = np.eye(4, dtype="float32")[labels] + 0.1
    images[4] = [0.05, 0.9, 0.3, 0.1]  # class 0, seen as 1, then 2, 3, 0
    images[5] = [0.0, 0.2, 0.1, 0.9]  # class 1, seen as 3, class 1 second
    predictions = zero_shot.classify(images, classifier)
    metrics = zero_shot.classification_metrics(predictions, labels, 4)
    assert metrics["top1"] == pytest.approx(4 / 6)
    assert metrics["top5"] == 1.0  # only 4 classes: always within the top 5
    top2 = np.mean((predictions[:, :2] == labels[:, None]).any(axis=1))
    assert top2 == pytest.approx(5 / 6)  # image 4 ranks its class last
    assert metrics["confusion_matrix"].tolist() == [
        [1, 1, 0, 0], [0, 1, 0, 1], [0, 0, 1, 0], [0, 0, 0, 1]]


class FakeTokenizer:
    def __call__(self, texts):
        return np.array([[hash(t) % 97] for t in texts])


class FakeModel:
    """encode_text: a fixed random unit vector per token row."""

    def __init__(self):
        self.table = unit(np.random.default_rng(1).normal(size=(97, 6)).astype("float32"))
        self.seen = []

    def encode_text(self, token_ids):
        self.seen.append(len(token_ids))
        return self.table[np.asarray(token_ids)[:, 0]]


def test_classifier_encodes_every_class_template_pair_in_batches():
    model, templates = FakeModel(), ("a {}.", "the {}!", "my {}")
    classifier = zero_shot.zero_shot_classifier(model, FakeTokenizer(), ["cat", "dog"],
                                                templates, batch_size=4)
    assert model.seen == [4, 2]
    rows = np.stack([[model.table[hash(t.format(n)) % 97] for t in templates]
                     for n in ("cat", "dog")])
    np.testing.assert_allclose(classifier, zero_shot.ensemble_class_embeddings(rows),
                               rtol=1e-6)
    with pytest.raises(ValueError, match="'{}'"):
        zero_shot.zero_shot_classifier(model, FakeTokenizer(), ["cat"], ["no slot"])
