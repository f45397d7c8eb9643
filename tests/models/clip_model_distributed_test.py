"""CLIPModel under tf.distribute.MirroredStrategy on two logical CPUs."""

import keras
import numpy as np
import pytest

from keras_clip.losses import contrastive_objective
from keras_clip.losses.contrastive_loss import contrastive_logits
from keras_clip.training.distribution import select_distribution
from tests.helpers import tiny_clip, tiny_pairs

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="tf.distribute strategies drive training only on the TensorFlow backend",
)


def train(strategy, initial_weights, data, accumulation_steps=1, objective="contrastive"):
    import tensorflow as tf

    with strategy.scope():
        model = tiny_clip(objective=objective)
        model.set_weights(initial_weights)
        model.accumulation_steps = accumulation_steps
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5))
    dataset = tf.data.Dataset.from_tensor_slices(data).batch(8, drop_remainder=True)
    model.fit(dataset, epochs=2, verbose=0)
    return model.get_weights()


@pytest.fixture(scope="module")
def setup():
    import tensorflow as tf

    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    assert len(devices) == 2, "conftest splits the CPU into two logical devices"
    keras.utils.set_random_seed(0)
    initial = tiny_clip().get_weights()
    data = tiny_pairs(16)  # 2 steps of a global batch of 8, 2 epochs
    single = train(tf.distribute.OneDeviceStrategy(devices[0]), initial, data)
    # The process's one MirroredStrategy (see `select_distribution`).
    mirrored = select_distribution("mirrored").engine
    assert mirrored.num_replicas_in_sync == 2
    return mirrored, initial, data, single


def max_difference(a, b):
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


def test_two_replicas_train_to_the_single_device_weights(setup):
    mirrored, initial, data, single = setup
    replicated = train(mirrored, initial, data)
    assert max_difference(single, initial) > 1e-3  # training moved the weights
    assert max_difference(replicated, single) <= 1e-5


def test_two_replicas_accumulating_train_to_the_single_device_weights(setup):
    # Each replica's 4 rows as 2 micro-batches of 2; the negatives are still
    # the global 8 (cached-gradient accumulation gathers across replicas).
    mirrored, initial, data, single = setup
    accumulated = train(mirrored, initial, data, accumulation_steps=2)
    assert max_difference(accumulated, single) <= 1e-5


@pytest.mark.parametrize("accumulation_steps", [1, 2])
def test_two_replicas_train_sigmoid_to_the_single_device_weights(setup, accumulation_steps):
    # SigLIP's loss: each replica's images against every replica's captions.
    import tensorflow as tf

    mirrored, _, data, _ = setup
    keras.utils.set_random_seed(0)
    initial = tiny_clip(objective="sigmoid").get_weights()
    device = tf.config.list_logical_devices("CPU")[0].name
    single = train(tf.distribute.OneDeviceStrategy(device), initial, data, objective="sigmoid")
    replicated = train(mirrored, initial, data, accumulation_steps, objective="sigmoid")
    assert max_difference(single, initial) > 1e-3
    assert max_difference(replicated, single) <= 1e-5


def test_without_the_gather_the_weights_differ(setup, monkeypatch):
    mirrored, initial, data, single = setup
    # Each replica sees only its own 4 pairs as negatives; scaling unchanged.
    monkeypatch.setattr(
        contrastive_objective,
        "gather_across_replicas",
        lambda image, text: (image, text, 0, mirrored.num_replicas_in_sync),
    )
    local_only = train(mirrored, initial, data)
    assert max_difference(local_only, single) > 1e-4


def test_each_replica_scores_its_rows_against_the_global_batch(setup, monkeypatch):
    mirrored, _, data, _ = setup
    shapes = []

    def recording(*args, **kwargs):
        logits = contrastive_logits(*args, **kwargs)
        shapes.append(tuple(logits[0].shape))
        return logits

    monkeypatch.setattr(contrastive_objective, "contrastive_logits", recording)
    import tensorflow as tf

    with mirrored.scope():
        model = tiny_clip()
        model.compile(optimizer=keras.optimizers.SGD(0.1), run_eagerly=True)
    model.fit(tf.data.Dataset.from_tensor_slices(data).batch(8, drop_remainder=True),
              steps_per_epoch=1, verbose=0)
    # Global batch 8 over 2 replicas: (local 4 × global 8) per replica, so
    # logits memory grows linearly with the global batch, not quadratically.
    assert shapes and set(shapes) == {(4, 8)}
