import math
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_clip import CLIPModel
from keras_clip.data.synthetic_pairs import synthetic_pairs
from keras_clip.models.text_transformer import TextTransformer
from keras_clip.models.vision_transformer import VisionTransformer
from keras_clip.preprocessing import CLIP_MEAN
from tests.helpers import assert_model_saves, tiny_clip, tiny_pairs, to_numpy
from tests.losses.contrastive_loss_test import reference_loss, unit_rows


@pytest.mark.parametrize("preset", ["tiny-vit", "tiny-resnet", "tiny-bow"])
def test_outputs_are_unit_norm_embeddings(preset):
    model = CLIPModel.from_preset(preset)
    batch = synthetic_pairs(3, model.image_size, model.context_length, 49408)
    outputs = model(batch)
    for key in ("image_embeddings", "text_embeddings"):
        assert tuple(outputs[key].shape) == (3, model.embedding_dim)
        np.testing.assert_allclose(
            np.linalg.norm(to_numpy(outputs[key]), axis=1), 1.0, rtol=1e-5
        )
    np.testing.assert_allclose(
        to_numpy(model.encode_image(batch["images"])),
        to_numpy(outputs["image_embeddings"]), atol=1e-6,
    )
    np.testing.assert_allclose(
        to_numpy(model.encode_text(batch["token_ids"])),
        to_numpy(outputs["text_embeddings"]), atol=1e-6,
    )


def test_logit_scale_starts_at_inverse_temperature():
    model = tiny_clip()
    np.testing.assert_allclose(float(to_numpy(model.logit_scale)), math.log(1 / 0.07), rtol=1e-6)


def test_compute_loss_matches_numpy_reference():
    model = tiny_clip()
    model.logit_scale.assign(1.5)
    rng = np.random.default_rng(0)
    image, text = unit_rows(rng, 5, 16), unit_rows(rng, 5, 16)
    loss = model.compute_loss(y_pred={"image_embeddings": image, "text_embeddings": text})
    np.testing.assert_allclose(float(to_numpy(loss)), reference_loss(image, text, 1.5), rtol=1e-5)


def test_similarity_is_scaled_cosine():
    model = tiny_clip()
    batch = tiny_pairs(4)
    expected = math.exp(float(to_numpy(model.logit_scale))) * (
        to_numpy(model.encode_image(batch["images"]))
        @ to_numpy(model.encode_text(batch["token_ids"])).T
    )
    np.testing.assert_allclose(
        to_numpy(model.similarity(batch["images"], batch["token_ids"])), expected, rtol=1e-5
    )


@pytest.mark.parametrize("preset", ["tiny-vit", "tiny-resnet", "tiny-bow"])
def test_fit_without_loss_argument_lowers_loss(preset):
    model = CLIPModel.from_preset(preset)
    batch = synthetic_pairs(8, model.image_size, model.context_length, 49408)
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=1e-3))
    history = model.fit(batch, batch_size=8, epochs=30, verbose=0).history
    losses = history["loss"]
    assert len(losses) == 30
    assert np.mean(losses[-5:]) < 0.5 * losses[0], losses
    assert history["image_to_text_accuracy"][-1] > 0.5
    assert history["text_to_image_accuracy"][-1] > 0.5


def test_uint8_pixels_are_normalised_with_the_preprocessing_record():
    from keras_clip.data.image_ops import normalize

    model = CLIPModel.from_preset("tiny-vit")
    model.preprocessing = {**model.preprocessing.to_dict(), "mean": [0.5] * 3,
                           "std": [0.25] * 3}  # not CLIP's: the record's are used
    pixels = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype("uint8")
    token_ids = synthetic_pairs(4, 32, model.context_length, 49408)["token_ids"]
    inputs = normalize(pixels, mean=[0.5] * 3, std=[0.25] * 3).numpy()
    expected = model({"images": inputs, "token_ids": token_ids})
    got = model({"images": pixels, "token_ids": token_ids})
    for key in expected:
        np.testing.assert_allclose(to_numpy(got[key]), to_numpy(expected[key]), atol=1e-6)
    np.testing.assert_allclose(to_numpy(model.encode_image(pixels)),
                               to_numpy(expected["image_embeddings"]), atol=1e-6)
    with pytest.raises(ValueError, match="uint8 pixels or normalised floats, not int32"):
        model.encode_image(pixels.astype("int32"))
    if keras.backend.backend() == "torch":  # no NumPy round trip (on a GPU, an error)
        import torch

        def refuse(*args, **kwargs):
            raise AssertionError("a torch tensor went through NumPy")

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(torch.Tensor, "__array__", refuse)
            model.encode_image(keras.ops.convert_to_tensor(pixels))
    # A training step on pixels is the step on their normalised inputs.
    steps = []
    for images in (pixels, inputs):
        keras.utils.set_random_seed(0)
        trained = CLIPModel.from_preset("tiny-vit")
        trained.preprocessing = model.preprocessing
        trained.accumulation_steps = 2  # normalised micro-batch by micro-batch
        trained.compile(optimizer=keras.optimizers.SGD(1.0))
        trained.fit({"images": images, "token_ids": token_ids}, batch_size=4, verbose=0)
        steps.append([to_numpy(w) for w in trained.trainable_weights])
    assert max(float(np.abs(a - b).max()) for a, b in zip(*steps)) <= 1e-5


def test_logit_scale_stays_clamped_after_updates():
    model = tiny_clip()
    optimizer = keras.optimizers.SGD(learning_rate=1.0)
    optimizer.build([model.logit_scale])
    optimizer.apply([keras.ops.convert_to_tensor(-1000.0)], [model.logit_scale])
    np.testing.assert_allclose(float(to_numpy(model.logit_scale)), math.log(100.0), rtol=1e-6)
    optimizer.apply([keras.ops.convert_to_tensor(1000.0)], [model.logit_scale])
    assert float(to_numpy(model.logit_scale)) == 0.0


def test_rejects_token_ids_wider_than_context():
    model = tiny_clip(context_length=8)
    batch = tiny_pairs(2)
    batch["token_ids"] = np.ones((2, 12), "int32")
    with pytest.raises(ValueError, match="context length is 8"):
        model(batch)


def test_compile_refuses_a_loss():
    with pytest.raises(ValueError, match="without `loss=`"):
        tiny_clip().compile(optimizer="sgd", loss="mse")


def test_rejects_towers_of_different_widths():
    image = VisionTransformer(16, 8, 32, 1, 2, output_dim=16)
    text = TextTransformer(100, 8, 32, 1, 2, output_dim=8)
    with pytest.raises(ValueError, match="share an embedding width"):
        CLIPModel(image, text)


def test_unknown_preset_lists_available_ones():
    expected = r"Unknown CLIP preset 'ViT-X/99'.*RN50.*ViT-B/32.*tiny-vit"
    with pytest.raises(ValueError, match=expected):
        CLIPModel.from_preset("ViT-X/99")


def test_save_and_load(tmp_path):
    model = tiny_clip()
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    model.fit(tiny_pairs(4), batch_size=4, epochs=1, verbose=0)
    model.logit_scale.assign(3.0)
    loaded = assert_model_saves(model, tiny_pairs(2), tmp_path)
    assert float(to_numpy(loaded.logit_scale)) == 3.0
    # The optimizer comes back with its state, ready to resume training.
    assert isinstance(loaded.optimizer, keras.optimizers.AdamW)
    assert int(to_numpy(loaded.optimizer.iterations)) == 1
    for ours, theirs in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(to_numpy(ours), to_numpy(theirs))
    assert isinstance(loaded.image_encoder, VisionTransformer)
    assert CLIPModel.from_preset(str(tmp_path / "model.keras")).get_config() == model.get_config()


NEXT_BACKEND = {"tensorflow": "jax", "jax": "torch", "torch": "tensorflow"}
LOAD_SCRIPT = """
import sys, keras, numpy as np
import keras_clip
model = keras.saving.load_model(sys.argv[1])
outputs = model(dict(np.load(sys.argv[2])))
np.savez(sys.argv[3], **{k: keras.ops.convert_to_numpy(v) for k, v in outputs.items()})
"""


@pytest.mark.slow
def test_saved_model_loads_on_another_backend(tmp_path):
    model = CLIPModel.from_preset("tiny-resnet")
    batch = synthetic_pairs(2, 64, 16, 49408)
    model.save(tmp_path / "model.keras")
    np.savez(tmp_path / "inputs.npz", **batch)
    other = NEXT_BACKEND[keras.backend.backend()]
    subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, str(tmp_path / "model.keras"),
         str(tmp_path / "inputs.npz"), str(tmp_path / "outputs.npz")],
        env={**os.environ, "KERAS_BACKEND": other}, check=True,
    )
    theirs = np.load(tmp_path / "outputs.npz")
    ours = model(batch)
    for key in ours:
        np.testing.assert_allclose(theirs[key], to_numpy(ours[key]), atol=1e-5)


SAVED_BY_0_1 = os.path.join(os.path.dirname(__file__), "saved", "clip_0_1.keras")


def test_a_model_saved_by_keras_clip_0_1_loads_computes_and_trains():
    # Written as tests/models/saved/README.md says, by keras_clip 0.1
    # (commit 886853c): before objectives, tower contracts and the record.
    import keras_clip
    from keras_clip.losses import ContrastiveObjective

    model = keras_clip.load_model(SAVED_BY_0_1)
    saved = np.load(SAVED_BY_0_1.replace(".keras", "_outputs.npz"))
    inputs = {"images": saved["images"], "token_ids": saved["token_ids"]}
    outputs = model.predict(inputs, verbose=0)
    for key in ("image_embeddings", "text_embeddings"):
        np.testing.assert_allclose(outputs[key], saved[key], atol=1e-6)
    assert isinstance(model.objective, ContrastiveObjective)
    assert model.objective.get_config() == {"logit_scale_init": 2.0, "max_logit_scale": 4.0}
    np.testing.assert_allclose(to_numpy(model.logit_scale), saved["logit_scale"])
    assert model.preprocessing.mean == CLIP_MEAN  # what every 0.1 pipeline used
    assert model.optimizer.head_variables is None  # heads found by the 0.1 rule
    # Saved on a CPU by TensorFlow, whose "auto" resolved to no XLA: this
    # backend decides again (JAX: a compiled step, not one op at a time).
    fresh = CLIPModel.from_preset("tiny-bow")
    fresh.compile()
    assert model.jit_compile == fresh.jit_compile
    assert model.jit_compile or keras.backend.backend() != "jax"
    heads = sorted(v.path for v in model.trainable_variables if model.optimizer.is_head(v))
    assert heads == sorted(v.path for v in model.head_variables)
    before = int(to_numpy(model.optimizer.iterations))
    model.fit(inputs, batch_size=4, epochs=1, verbose=0)
    assert int(to_numpy(model.optimizer.iterations)) == before + 1


def test_the_0_1_temperature_arguments_still_set_clips_objective():
    from keras_clip.losses import ContrastiveObjective

    towers = CLIPModel.from_preset("tiny-vit")
    image, text = towers.image_encoder, towers.text_encoder
    model = CLIPModel(image, text, logit_scale_init=2.0, max_logit_scale=3.0)
    assert model.objective.get_config() == {"logit_scale_init": 2.0, "max_logit_scale": 3.0}
    assert float(to_numpy(model.logit_scale)) == 2.0
    with pytest.raises(ValueError, match="pass them to the objective"):
        CLIPModel(image, text, objective=ContrastiveObjective(), logit_scale_init=2.0)


def test_a_new_patch_dropout_rate_takes_effect_in_the_next_fit():
    # The second fit of `changed` runs at rate 0.9 (1 of 16 patches): were
    # the first fit's traced step (rate 0) kept, it would equal `same`.
    pairs = synthetic_pairs(8, image_size=32, seed=3)

    def two_fits(second_rate):
        keras.utils.set_random_seed(0)
        model = CLIPModel.from_preset("tiny-vit")
        model.compile(optimizer=keras.optimizers.SGD(1.0))
        model.fit(pairs, batch_size=8, epochs=1, shuffle=False, verbose=0)
        model.image_encoder.patch_dropout = second_rate
        model.fit(pairs, batch_size=8, epochs=1, shuffle=False, verbose=0)
        return [to_numpy(w) for w in model.trainable_weights]

    same, changed = two_fits(0.0), two_fits(0.9)
    assert max(float(np.abs(a - b).max()) for a, b in zip(same, changed)) > 1e-4
