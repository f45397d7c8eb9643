"""Cached-gradient accumulation: one step in micro-batches equals the whole batch's.

Each test takes one SGD step (learning rate 1, so the update is the
gradient) on a batch of 16, once whole and once as `accumulation_steps`
micro-batches, from the same weights, and compares the updated weights to
1e-5 (float32). Training moves them by far more than that.
"""

import keras
import numpy as np
import pytest

from keras_clip import CLIPModel
from keras_clip.data.synthetic_pairs import synthetic_pairs
from keras_clip.losses.contrastive_objective import ContrastiveObjective
from keras_clip.losses.objective import Objective
from keras_clip.training import fine_tuning, trainer
from tests.helpers import to_numpy

BATCH = 16


def one_step(preset, accumulation_steps, prepare=None, batch=BATCH, objective=None):
    """The weights before, the weights after one step, the logs, and the model."""
    keras.utils.set_random_seed(0)
    model = CLIPModel.from_preset(preset)
    if objective is not None:
        model = CLIPModel(model.image_encoder, model.text_encoder, objective=objective)
    if prepare:
        prepare(model)
    model.accumulation_steps = accumulation_steps
    model.compile(optimizer=keras.optimizers.SGD(1.0))
    pairs = synthetic_pairs(batch, image_size=model.image_size, seed=1)
    before = [to_numpy(weight) for weight in model.weights]
    history = model.fit(pairs, batch_size=batch, epochs=1, shuffle=False, verbose=0).history
    return before, [to_numpy(weight) for weight in model.weights], history, model


def largest_difference(a, b):
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


def assert_same_step(whole, accumulated, tolerance=1e-5):
    before, after, logs, _ = whole
    assert largest_difference(before, after) > 1e-2  # the step moved the weights
    assert largest_difference(after, accumulated[1]) <= tolerance
    for key, values in logs.items():  # the loss and the in-batch accuracies
        np.testing.assert_allclose(accumulated[2][key], values, atol=1e-5, err_msg=key)


@pytest.mark.parametrize("preset, objective", [("tiny-vit", None), ("tiny-bow", None),
                                                ("tiny-vit", "sigmoid")])
def test_an_accumulated_step_is_the_whole_batch_step(preset, objective):
    whole = one_step(preset, 1, objective=objective)
    assert_same_step(whole, one_step(preset, 4, objective=objective))


def locked_and_rematerialised(model):
    fine_tuning.lock_tower(model.image_encoder, unlocked_blocks=1)
    trainer.rematerialize(model)


def test_with_a_locked_tower_and_remat_the_step_is_the_same():
    whole = one_step("tiny-vit", 1, locked_and_rematerialised)
    accumulated = one_step("tiny-vit", 2, locked_and_rematerialised)
    assert_same_step(whole, accumulated)
    model = accumulated[3]
    frozen = {id(weight) for weight in model.non_trainable_weights}
    for weight, before, after in zip(model.weights, accumulated[0], accumulated[1]):
        if id(weight) in frozen:
            np.testing.assert_array_equal(before, after, err_msg=weight.path)


def test_under_mixed_bfloat16_the_step_is_the_same_to_bfloat16_rounding():
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        whole, accumulated = one_step("tiny-vit", 1), one_step("tiny-vit", 2)
    finally:
        keras.config.set_dtype_policy(policy)
    # bfloat16 keeps 8 significant bits: the micro-batches' matmuls round
    # differently from the whole batch's, so updates agree to a few percent.
    updates = [a - b for a, b in zip(whole[1], whole[0])]
    accumulated_updates = [a - b for a, b in zip(accumulated[1], accumulated[0])]
    scale = max(float(np.max(np.abs(u))) for u in updates)
    assert largest_difference(updates, accumulated_updates) <= 0.05 * scale
    assert all(np.isfinite(w).all() for w in accumulated[1])


def test_batchnorm_sees_micro_batch_statistics():
    """ModifiedResNet: the step equals the whole-batch loss over embeddings made per micro-batch.

    Each micro-batch is normalised with its own statistics (as under
    tf.distribute each replica's part is), so the reference embeds the
    micro-batches one by one in training mode, then takes the gradient of
    the dense loss over all of them; the moving statistics are updated once
    per micro-batch in both.
    """
    steps = 2  # each micro-batch one more ResNet pass to compile in the reference
    (expected, statistics, whole), (got, moving) = step_against_micro_batches(
        "tiny-resnet", steps)
    assert largest_difference(expected, got) <= 1e-5
    assert largest_difference(statistics, moving) <= 1e-5
    assert largest_difference(whole, expected) > 1e-3  # one batch's statistics: another step


def with_patch_dropout(model):
    model.image_encoder.patch_dropout = 0.5


def test_patch_dropout_drops_the_same_patches_in_both_passes():
    """FLIP's random patches: the second pass draws what the first drew.

    The reference embeds the micro-batches one after another in training
    mode from the same seed state, so each draws its own patches; the
    accumulated step equals the gradient of the loss over those embeddings
    only if its re-run micro-batches draw the same patches again.
    """
    (expected, _, whole), (got, _) = step_against_micro_batches(
        "tiny-vit", 2, with_patch_dropout)
    assert largest_difference(expected, got) <= 1e-5
    assert largest_difference(whole, expected) > 1e-3  # other patches: another step


def step_against_micro_batches(preset, steps, prepare=None):
    """An accumulated SGD step beside its reference, embedded micro-batch by micro-batch.

    Returns `(expected weights, expected non-trainable weights, the weights
    a whole-batch forward pass would give)` and `(trained weights, trained
    non-trainable weights)`.
    """
    _, after, _, model = one_step(preset, steps, prepare)
    keras.utils.set_random_seed(0)
    reference = CLIPModel.from_preset(preset)
    if prepare:
        prepare(reference)
    pairs = synthetic_pairs(BATCH, image_size=reference.image_size, seed=1)
    size = BATCH // steps  # micro-batch i: rows i·size … (i + 1)·size − 1
    parts = [{key: value[i * size:(i + 1) * size] for key, value in pairs.items()}
             for i in range(steps)]
    start = [to_numpy(weight) for weight in reference.trainable_weights]
    gradients, statistics = micro_batch_norm_gradients(reference, parts)
    whole, _ = micro_batch_norm_gradients(reference, [pairs])

    def stepped(gradients):
        return [weight - gradient for weight, gradient in zip(start, gradients)]

    trained = dict(zip([id(w) for w in model.weights], after))
    got = [trained[id(weight)] for weight in model.trainable_weights]
    moving = [trained[id(w)] for w in model.non_trainable_weights]
    return (stepped(gradients), statistics, stepped(whole)), (got, moving)


def micro_batch_norm_gradients(model, parts):
    """Gradients of the dense loss over embeddings made micro-batch by micro-batch."""
    backend = keras.backend.backend()
    weights = model.objective_weights

    def loss_of(outputs):
        image = keras.ops.concatenate([o["image_embeddings"] for o in outputs])
        text = keras.ops.concatenate([o["text_embeddings"] for o in outputs])
        return model.objective.loss(weights, image, text)[0]

    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = loss_of([model(part, training=True) for part in parts])
        gradients = tape.gradient(loss, model.trainable_weights)
        gradients = [to_numpy(tf.convert_to_tensor(g)) if g is not None else 0.0
                     for g in gradients]
        return gradients, [to_numpy(w) for w in model.non_trainable_weights]
    if backend == "torch":
        model.zero_grad()
        loss = loss_of([model(part, training=True) for part in parts])
        loss.backward()
        gradients = [to_numpy(w.value.grad) if w.value.grad is not None else 0.0
                     for w in model.trainable_weights]
        return gradients, [to_numpy(w) for w in model.non_trainable_weights]
    import jax

    def jax_loss(trainable, non_trainable):
        outputs = []
        for part in parts:
            output, non_trainable = model.stateless_call(trainable, non_trainable, part,
                                                         training=True)
            outputs.append(output)
        mapping = list(zip(model.trainable_variables, trainable))
        with keras.StatelessScope(state_mapping=mapping):
            return loss_of(outputs), non_trainable

    trainable = [w.value for w in model.trainable_variables]
    non_trainable = [w.value for w in model.non_trainable_variables]
    # Compiled: op by op, JAX takes minutes over a ResNet's forward and backward.
    gradients, statistics = jax.jit(jax.grad(jax_loss, has_aux=True))(trainable, non_trainable)
    return [np.asarray(g) for g in gradients], [np.asarray(s) for s in statistics]


def test_validation_in_micro_batches_reports_the_whole_batch():
    _, _, _, model = one_step("tiny-vit", 4)
    pairs = synthetic_pairs(2 * BATCH, image_size=model.image_size, seed=2)
    parts = model.evaluate(pairs, batch_size=BATCH, verbose=0, return_dict=True)
    model.accumulation_steps = 1
    whole = model.evaluate(pairs, batch_size=BATCH, verbose=0, return_dict=True)
    assert set(parts) == set(whole)
    for key in whole:
        np.testing.assert_allclose(parts[key], whole[key], rtol=1e-5, err_msg=key)


def test_a_batch_that_does_not_split_is_refused():
    model = CLIPModel.from_preset("tiny-vit")
    model.accumulation_steps = 4
    model.compile(optimizer="sgd")
    pairs = synthetic_pairs(10, image_size=model.image_size)
    with pytest.raises(ValueError, match="A batch of 10 examples does not split into 4"):
        model.fit(as_whole_batches(pairs, 10), verbose=0)


def as_whole_batches(pairs, batch):
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices(pairs).batch(batch, drop_remainder=True)


@pytest.mark.parametrize("steps", [0, -2, 1.5, True, "4"])
def test_accumulation_steps_must_be_a_positive_integer(steps):
    with pytest.raises(ValueError, match="accumulation_steps must be a positive integer"):
        CLIPModel.from_preset("tiny-bow").accumulation_steps = steps


def test_an_objective_without_a_cached_gradient_form_is_refused_up_front():
    class DenseOnly(ContrastiveObjective):
        loss_and_gradients = Objective.loss_and_gradients

    model = CLIPModel.from_preset("tiny-bow")
    image, text = model.image_encoder, model.text_encoder
    with pytest.raises(ValueError, match="has no cached-gradient form"):
        CLIPModel(image, text, objective=DenseOnly(), accumulation_steps=2)


def test_accumulation_steps_are_saved_with_the_model(tmp_path):
    model = CLIPModel.from_preset("tiny-bow")
    model.accumulation_steps = 8
    assert CLIPModel.from_config(model.get_config()).accumulation_steps == 8
    model.save(tmp_path / "model.keras")
    assert keras.saving.load_model(tmp_path / "model.keras").accumulation_steps == 8
