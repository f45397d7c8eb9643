"""Image–text retrieval: Recall@K and ranks, computed in chunks.

For every query the rank of its first correct match among all candidates
(1 = best) is found from one chunk of query rows at a time, so a 100k ×
100k similarity matrix never exists at once: memory is `chunk_size × N`.
"""

import numpy as np


def _ranks(queries, candidates, is_match, chunk_size):
    """Rank (1-based) of the best-scoring correct candidate of each query."""
    ranks = np.empty(len(queries), np.int64)
    for start in range(0, len(queries), chunk_size):
        scores = queries[start : start + chunk_size] @ candidates.T  # (chunk, N)
        matches = is_match(np.arange(start, start + len(scores)))  # (chunk, N) bool
        best_correct = np.where(matches, scores, -np.inf).max(axis=1, keepdims=True)
        # Ties count in the query's favour, as a stable argsort would.
        ranks[start : start + len(scores)] = 1 + (scores > best_correct).sum(axis=1)
    return ranks


def retrieval_metrics(image_embeddings, text_embeddings, text_to_image=None,
                      chunk_size=2048, ks=(1, 5, 10)):
    """Recall@K, mean and median rank in both directions.

    Args:
        image_embeddings: `(N_images, D)` unit-norm image embeddings.
        text_embeddings: `(N_texts, D)` unit-norm caption embeddings.
        text_to_image: `(N_texts,)` index of each caption's image (default:
            caption `i` describes image `i`). An image with several captions
            is retrieved correctly by any of them and retrieves correctly any.
        chunk_size: query rows scored at once.

    Returns:
        A dict of floats: `image_to_text_R@K`, `text_to_image_R@K`,
        `*_mean_rank`, `*_median_rank`.
    """
    images = np.asarray(image_embeddings, np.float32)
    texts = np.asarray(text_embeddings, np.float32)
    owner = np.arange(len(texts)) if text_to_image is None else np.asarray(text_to_image)
    if len(owner) != len(texts) or owner.min(initial=0) < 0 or owner.max(initial=0) >= len(images):
        raise ValueError("text_to_image must give each caption an image index in range.")
    ranks = {
        "image_to_text": _ranks(images, texts, lambda rows: owner[None, :] == rows[:, None],
                                chunk_size),
        "text_to_image": _ranks(texts, images,
                                lambda rows: np.arange(len(images))[None, :] == owner[rows, None],
                                chunk_size),
    }
    metrics = {}
    for direction, rank in ranks.items():
        for k in ks:
            metrics[f"{direction}_R@{k}"] = float(np.mean(rank <= k))
        metrics[f"{direction}_mean_rank"] = float(np.mean(rank))
        metrics[f"{direction}_median_rank"] = float(np.median(rank))
    return metrics
