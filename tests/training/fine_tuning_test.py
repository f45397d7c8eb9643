import keras
import numpy as np
import pytest

from keras_clip import CLIPModel
from keras_clip.training import train
from keras_clip.training.fine_tuning import lock_tower, residual_blocks, wise_ft
from tests.helpers import tiny_pairs, to_numpy
from tests.training.shards import write_training_shards


def weights(layer):
    return [to_numpy(w) for w in layer.weights]


def changed(before, after):
    return [not np.array_equal(a, b) for a, b in zip(before, after)]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_training_shards(tmp_path_factory.mktemp("shards"), count=16)


def fit_a_little(model, steps=3):
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    pairs = tiny_pairs(8) if model.image_size == 16 else None
    if pairs is None:
        from keras_clip.data.synthetic_pairs import synthetic_pairs

        pairs = synthetic_pairs(8, image_size=model.image_size, context_length=16)
    model.fit(pairs, batch_size=8, epochs=steps, verbose=0)


def test_lit_locks_the_whole_image_tower_and_trains_the_text_tower():
    model = CLIPModel.from_preset("tiny-vit")
    lock_tower(model.image_encoder)
    image_before, text_before = weights(model.image_encoder), weights(model.text_encoder)
    fit_a_little(model)
    assert not any(changed(image_before, weights(model.image_encoder)))
    assert all(changed(text_before, weights(model.text_encoder)))


def test_unlocking_the_last_block_trains_it_and_what_follows_only():
    model = CLIPModel.from_preset("tiny-vit")
    encoder = model.image_encoder
    lock_tower(encoder, unlocked_blocks=1)
    last = residual_blocks(encoder)[-1]
    frozen = [encoder.patch_embedding, encoder.ln_pre, residual_blocks(encoder)[0]]
    trained = [last, encoder.ln_post, encoder.projection]
    before = {layer.name: weights(layer) for layer in frozen + trained}
    fit_a_little(model)
    for layer in frozen:
        assert not any(changed(before[layer.name], weights(layer))), layer.name
    for layer in trained:
        assert any(changed(before[layer.name], weights(layer))), layer.name
    with pytest.raises(ValueError, match="Cannot unlock 3 blocks of image_encoder: it has 2"):
        lock_tower(encoder, unlocked_blocks=3)


def test_wise_ft_endpoints_are_exact_and_the_middle_is_the_mean():
    start = CLIPModel.from_preset("tiny-vit")
    tuned = CLIPModel.from_preset("tiny-vit")
    assert any(changed(weights(start), weights(tuned)))
    for alpha, expected in ((0.0, weights(start)), (1.0, weights(tuned))):
        ensemble = wise_ft(start, tuned, alpha)
        for actual, value in zip(weights(ensemble), expected):
            np.testing.assert_array_equal(actual, value)
    middle = wise_ft(start, tuned, 0.5)
    for actual, a, b in zip(weights(middle), weights(start), weights(tuned)):
        np.testing.assert_allclose(actual, (a + b) / 2, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="alpha in \\[0, 1\\]"):
        wise_ft(start, tuned, 1.5)
    with pytest.raises(ValueError, match="same architecture"):
        wise_ft(start, CLIPModel.from_preset("tiny-bow"), 0.5)


def test_train_fine_tunes_a_saved_model_with_lit_and_saves_the_wise_ft_blend(data, tmp_path):
    start = CLIPModel.from_preset("tiny-vit")
    start.save(str(tmp_path / "start.keras"))
    result = train({"preset": str(tmp_path / "start.keras"), "train_data": data,
                    "tokenizer": None, "batch_size": 8, "steps": 2, "warmup_steps": 1,
                    "learning_rate": 1e-2, "lock_image_tower": True, "wise_ft_alpha": 0.5,
                    "output_dir": str(tmp_path / "run"), "verbose": 0})
    tuned = result.model
    assert not any(changed(weights(start.image_encoder), weights(tuned.image_encoder)))
    assert any(changed(weights(start.text_encoder), weights(tuned.text_encoder)))
    blend = keras.saving.load_model(result.wise_ft_path)
    for actual, a, b in zip(weights(blend.text_encoder), weights(start.text_encoder),
                            weights(tuned.text_encoder)):
        np.testing.assert_allclose(actual, (a + b) / 2, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_bf16_training_lowers_the_loss_and_keeps_float32_variables():
    model = CLIPModel.from_preset("tiny-vit", dtype="mixed_bfloat16")
    model.compile(optimizer=keras.optimizers.AdamW(2e-3))
    from keras_clip.data.synthetic_pairs import synthetic_pairs

    pairs = synthetic_pairs(32, image_size=32, context_length=16)
    history = model.fit(pairs, batch_size=16, epochs=12, verbose=0).history["loss"]
    assert history[-1] < 0.5 * history[0]
    assert {v.dtype for v in model.weights} == {"float32"}
    assert model.image_encoder.blocks[0].compute_dtype == "bfloat16"
    outputs = model({key: value[:2] for key, value in pairs.items()})
    assert keras.backend.standardize_dtype(outputs["image_embeddings"].dtype) == "float32"


def test_remat_trains_a_resnet_recomputing_only_its_text_blocks(data, tmp_path):
    # Batch-normed bottlenecks are not rematerialised: recomputation would
    # repeat their statistics updates, and on TensorFlow's graph executor
    # (what the trainer runs on a CPU) recompute_grad cannot pass `training`.
    result = train({
        "preset": "tiny-resnet", "train_data": data, "tokenizer": None, "batch_size": 8,
        "steps": 2, "warmup_steps": 1, "remat": True, "output_dir": str(tmp_path),
        "verbose": 0})
    model = result.model
    text_block = model.text_encoder.blocks[0]
    assert text_block._remat_mode.mode == "full"
    bottleneck = model.image_encoder.stages[0][0]
    assert bottleneck._remat_mode is None
    assert model.image_encoder.remat_blocks == []
    assert np.isfinite(result.history["loss"]).all()
    moved = to_numpy(bottleneck.bn1.moving_mean)  # starts at zeros: moved by training
    assert np.abs(moved).max() > 0


def test_train_with_bf16_and_remat_matches_bf16_without_remat(data, tmp_path):
    runs = {}
    for remat in (False, True):
        runs[remat] = train({
            "preset": "tiny-vit", "train_data": data, "tokenizer": None, "batch_size": 8,
            "steps": 2, "warmup_steps": 1, "remat": remat, "precision": "mixed_bfloat16",
            "output_dir": str(tmp_path / str(remat)), "verbose": 0}).model
    model = runs[True]
    assert model.image_encoder.blocks[0].compute_dtype == "bfloat16"
    assert [block._remat_mode.mode for block in model.image_encoder.blocks] == ["full"] * 2
    assert runs[False].image_encoder.blocks[0]._remat_mode is None
    assert {v.dtype for v in model.weights} == {"float32"}
    assert keras.config.dtype_policy().name == "float32"  # restored afterwards
    # Recomputing activations in the backward pass changes memory, not math;
    # but XLA fuses the recomputed bfloat16 ops differently (8-bit mantissa),
    # and Adam's per-coordinate normalisation turns a 0.4% gradient difference
    # on a near-zero coordinate into up to lr (5e-4) of weight, 2·lr where its
    # sign flips. Seen on JAX: 1–2 coordinates in a thousand past 1e-5, the
    # largest 9.2e-4. Remat of the wrong function would move most apart.
    differences = np.concatenate([
        np.abs(a - b).ravel() for a, b in zip(weights(runs[False]), weights(model))])
    assert np.mean(differences <= 1e-5) >= 0.99, np.mean(differences <= 1e-5)
    assert differences.max() <= 2 * 5e-4 + 1e-6
