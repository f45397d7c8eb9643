import keras
import numpy as np
import pytest

from keras_clip.evaluation import zero_shot
from keras_clip.evaluation.zero_shot_evaluation import ZeroShotEvaluation
from tests.helpers import tiny_clip


class IdTokenizer:
    """Each prompt → 8 ids from its characters (enough to tell them apart)."""

    def __call__(self, texts):
        rows = [[(ord(c) % 900) + 1 for c in t[:6]] + [999, 0] for t in texts]
        return np.array([(r + [0] * 8)[:8] for r in rows], "int32")


def test_logged_numbers_equal_a_standalone_evaluation_of_the_same_weights():
    model = tiny_clip()
    rng = np.random.default_rng(0)
    pairs = {"images": rng.normal(size=(16, 16, 16, 3)).astype("float32"),
             "token_ids": IdTokenizer()([f"pair {i}" for i in range(16)])}
    data = {"images": pairs["images"], "labels": rng.integers(0, 3, 16)}
    callback = ZeroShotEvaluation(IdTokenizer(), ["cat", "dog", "bird"], data,
                                  templates=("a {}.", "the {}"), captions=pairs["token_ids"],
                                  batch_size=5)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    history = model.fit(pairs, batch_size=8, epochs=2, verbose=0, callbacks=[callback])
    logged = history.history
    assert len(logged["zero_shot_top1"]) == 2
    classifier = zero_shot.zero_shot_classifier(model, IdTokenizer(), ["cat", "dog", "bird"],
                                                ("a {}.", "the {}"))
    standalone = zero_shot.evaluate_zero_shot(model, classifier, [data])
    assert logged["zero_shot_top1"][-1] == pytest.approx(standalone["top1"])
    assert logged["zero_shot_top5"][-1] == pytest.approx(standalone["top5"])
    assert logged["zero_shot_text_to_image_R@5"][-1] == pytest.approx(
        callback.evaluate()["zero_shot_text_to_image_R@5"])
