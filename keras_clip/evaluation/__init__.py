"""Evaluation: zero-shot classification, retrieval, linear probes, a callback."""

from keras_clip.evaluation.evaluate import evaluate
from keras_clip.evaluation.linear_probe import linear_probe
from keras_clip.evaluation.retrieval import retrieval_metrics
from keras_clip.evaluation.zero_shot import (
    TEMPLATES,
    evaluate_zero_shot,
    zero_shot_classifier,
)
from keras_clip.evaluation.zero_shot_evaluation import ZeroShotEvaluation

__all__ = ["TEMPLATES", "ZeroShotEvaluation", "evaluate", "evaluate_zero_shot",
           "linear_probe", "retrieval_metrics", "zero_shot_classifier"]
