import numpy as np
import pytest

from keras_clip.models.vision_transformer import VisionTransformer
from tests.helpers import assert_model_saves, to_numpy

ARGS = dict(image_size=32, patch_size=8, hidden_dim=32, num_layers=2, num_heads=2,
            output_dim=16)


def test_output_shape():
    encoder = VisionTransformer(**ARGS)
    assert tuple(encoder(np.zeros((3, 32, 32, 3), "float32")).shape) == (3, 16)


def test_projection_has_no_bias_and_norms_use_pytorch_epsilon():
    encoder = VisionTransformer(**ARGS)
    assert encoder.projection.bias is None
    assert encoder.ln_pre.epsilon == encoder.ln_post.epsilon == 1e-5


def test_output_reads_the_class_token():
    # Positions are learned per patch: moving a patch changes the class
    # token's output, so the encoder is not a bag of patches.
    encoder = VisionTransformer(**ARGS)
    images = np.random.default_rng(0).normal(size=(1, 32, 32, 3)).astype("float32")
    rolled = np.roll(images, 8, axis=1)
    assert not np.allclose(to_numpy(encoder(images)), to_numpy(encoder(rolled)))


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"image_size": 30}, "divisible by patch_size"),
        ({"num_heads": 5}, "divisible by num_heads"),
    ],
)
def test_rejects_bad_configuration(changes, message):
    with pytest.raises(ValueError, match=message):
        VisionTransformer(**{**ARGS, **changes})


def test_save_and_load(tmp_path):
    encoder = VisionTransformer(**{**ARGS, "activation": "gelu", "mlp_ratio": 2})
    images = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    assert_model_saves(encoder, images, tmp_path)


def test_patch_dropout_changes_training_only():
    encoder = VisionTransformer(**ARGS)
    images = np.random.default_rng(0).normal(size=(4, 32, 32, 3)).astype("float32")
    full = to_numpy(encoder(images, training=True))
    encoder.patch_dropout = 0.5
    np.testing.assert_array_equal(to_numpy(encoder(images)), to_numpy(encoder(images)))
    np.testing.assert_allclose(to_numpy(encoder(images)), full, atol=1e-6)  # inference
    assert np.abs(to_numpy(encoder(images, training=True)) - full).max() > 1e-3


def test_a_dropped_patch_has_no_effect_and_a_kept_one_does():
    # 16 patches at rate 0.75: 4 kept. Each patch's pixels are made unique, so
    # the kept patches' tokens say which they were.
    encoder = VisionTransformer(**ARGS, patch_dropout=0.75)
    images = np.random.default_rng(0).normal(size=(1, 32, 32, 3)).astype("float32")
    state = to_numpy(encoder.patch_dropout_layer.seed_generator.state)

    def trained_output(x):
        encoder.patch_dropout_layer.seed_generator.state.assign(state)  # the same draw
        return to_numpy(encoder(x, training=True))

    tokens = to_numpy(encoder.patch_embedding(images))[0, 1:]  # (16, width)
    encoder.patch_dropout_layer.seed_generator.state.assign(state)
    kept_tokens = to_numpy(encoder.patch_dropout_layer(encoder.patch_embedding(images),
                                                   training=True))[0, 1:]
    kept = [int(np.argmin(np.abs(tokens - row).sum(-1))) for row in kept_tokens]
    assert len(set(kept)) == 4
    dropped = sorted(set(range(16)) - set(kept))

    def changed(patch):
        x = images.copy()
        row, column = divmod(patch, 4)
        x[0, 8 * row:8 * row + 8, 8 * column:8 * column + 8] += 3.0
        return trained_output(x)

    expected = trained_output(images)
    np.testing.assert_allclose(changed(dropped[0]), expected, atol=1e-6)
    np.testing.assert_allclose(changed(dropped[-1]), expected, atol=1e-6)
    assert np.abs(changed(kept[0]) - expected).max() > 1e-3


def test_patch_dropout_is_saved_and_validated(tmp_path):
    encoder = VisionTransformer(**ARGS, patch_dropout=0.25)
    assert encoder.get_config()["patch_dropout"] == 0.25
    assert_model_saves(encoder, np.zeros((2, 32, 32, 3), "float32"), tmp_path)
    with pytest.raises(ValueError, match=r"patch_dropout must be a number in \[0, 1\)"):
        encoder.patch_dropout = 1.0
    assert encoder.patch_dropout == 0.25
