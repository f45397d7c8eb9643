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
