import numpy as np
import pytest

from keras_clip.models.modified_resnet import ModifiedResNet
from tests.helpers import assert_model_saves, to_numpy

ARGS = dict(image_size=64, blocks_per_stage=(1, 1, 1, 1), width=8, num_heads=4,
            output_dim=16)


def test_output_shape():
    encoder = ModifiedResNet(**ARGS)
    assert tuple(encoder(np.zeros((2, 64, 64, 3), "float32")).shape) == (2, 16)


def test_stages_and_pooled_width():
    encoder = ModifiedResNet(**{**ARGS, "blocks_per_stage": (2, 1, 3, 1)})
    assert [len(stage) for stage in encoder.stages] == [2, 1, 3, 1]
    assert [stage[0].stride for stage in encoder.stages] == [1, 2, 2, 2]
    # 8 * width channels after expansion 4 = 32 * width: 256 for width 8.
    assert encoder.attention_pooling.hidden_dim == 256
    assert encoder.attention_pooling.spatial_size == 2


def test_strided_stem_pads_symmetrically():
    # A 1-pixel border on every side (as PyTorch's padding=1), then a valid
    # stride-2 conv: a 64-pixel input gives 32, sampled from (−1, −1).
    encoder = ModifiedResNet(**ARGS)
    assert tuple(encoder.stem_padding.padding) == ((1, 1), (1, 1))
    assert encoder.stem_convs[0].padding == "valid"


def test_batch_norm_uses_statistics_only_in_training():
    encoder = ModifiedResNet(**ARGS)
    images = np.random.default_rng(0).normal(size=(4, 64, 64, 3)).astype("float32")
    inference = to_numpy(encoder(images, training=False))
    training = to_numpy(encoder(images, training=True))
    assert not np.allclose(inference, training, atol=1e-4)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"image_size": 48}, "divisible by the total stride 32"),
        ({"blocks_per_stage": (1, 1, 1)}, "needs 4 entries"),
        ({"num_heads": 3}, "divisible by num_heads"),
    ],
)
def test_rejects_bad_configuration(changes, message):
    with pytest.raises(ValueError, match=message):
        ModifiedResNet(**{**ARGS, **changes})


def test_save_and_load(tmp_path):
    encoder = ModifiedResNet(**ARGS)
    images = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype("float32")
    assert_model_saves(encoder, images, tmp_path)
