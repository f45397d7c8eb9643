"""Evaluation: zero-shot classification, retrieval, linear probes."""

from keras_clip.evaluation.retrieval import retrieval_metrics
from keras_clip.evaluation.zero_shot import (
    TEMPLATES,
    evaluate_zero_shot,
    zero_shot_classifier,
)

__all__ = ["TEMPLATES", "evaluate_zero_shot", "retrieval_metrics", "zero_shot_classifier"]
