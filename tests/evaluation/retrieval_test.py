import numpy as np
import pytest

from keras_clip.evaluation.retrieval import retrieval_metrics


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def brute_force(images, texts, owner):
    """Full similarity matrix, argsort, position of the first correct match."""
    similarity = images @ texts.T
    i2t = []
    for i, row in enumerate(similarity):
        order = np.argsort(-row)
        i2t.append(1 + np.flatnonzero(owner[order] == i)[0])
    t2i = []
    for t, column in enumerate(similarity.T):
        order = np.argsort(-column)
        t2i.append(1 + np.flatnonzero(order == owner[t])[0])
    return np.array(i2t), np.array(t2i)


@pytest.mark.parametrize("chunk_size", [7, 64, 10_000])
def test_recall_and_ranks_equal_a_brute_force_computation(chunk_size):
    rng = np.random.default_rng(0)
    images = unit(rng.normal(size=(50, 16)))
    owner = np.concatenate([np.arange(50), rng.integers(0, 50, 30)])  # 80 captions
    texts = unit(images[owner] + rng.normal(scale=1.2, size=(80, 16)))
    metrics = retrieval_metrics(images, texts, owner, chunk_size=chunk_size)
    i2t, t2i = brute_force(images, texts, owner)
    for k in (1, 5, 10):
        assert metrics[f"image_to_text_R@{k}"] == pytest.approx(np.mean(i2t <= k))
        assert metrics[f"text_to_image_R@{k}"] == pytest.approx(np.mean(t2i <= k))
    assert metrics["image_to_text_mean_rank"] == pytest.approx(i2t.mean())
    assert metrics["text_to_image_median_rank"] == pytest.approx(np.median(t2i))
    assert 0 < metrics["text_to_image_R@1"] < 1  # neither trivial nor hopeless


def test_one_caption_per_image_by_default_and_bad_owners_fail():
    rng = np.random.default_rng(1)
    images = unit(rng.normal(size=(10, 4)))
    assert retrieval_metrics(images, images)["image_to_text_R@1"] == 1.0
    with pytest.raises(ValueError, match="text_to_image"):
        retrieval_metrics(images, images, text_to_image=np.full(10, 10))
