import numpy as np
import pytest

from keras_clip.models.text_transformer import TextTransformer
from tests.helpers import assert_model_saves, to_numpy

ARGS = dict(vocabulary_size=100, context_length=8, hidden_dim=32, num_layers=2,
            num_heads=2, output_dim=16, end_of_text_id=99)
IDS = np.array([[98, 5, 6, 99, 0, 0, 0, 0], [98, 7, 8, 9, 10, 99, 0, 0]], "int32")


def test_output_shape():
    assert tuple(TextTransformer(**ARGS)(IDS).shape) == (2, 16)


def test_tokens_after_end_of_text_do_not_matter():
    # Causal attention + reading at end-of-text: what follows it is invisible.
    encoder = TextTransformer(**ARGS)
    changed = IDS.copy()
    changed[0, 4:] = [11, 12, 13, 14]
    out, out_changed = to_numpy(encoder(IDS)), to_numpy(encoder(changed))
    np.testing.assert_allclose(out[0], out_changed[0], atol=1e-5)


def test_tokens_before_end_of_text_matter():
    encoder = TextTransformer(**ARGS)
    changed = IDS.copy()
    changed[0, 1] = 42
    assert not np.allclose(to_numpy(encoder(IDS))[0], to_numpy(encoder(changed))[0])


def test_accepts_shorter_sequences():
    encoder = TextTransformer(**ARGS)
    np.testing.assert_allclose(
        to_numpy(encoder(IDS[:, :6])), to_numpy(encoder(IDS)), atol=1e-5
    )


def test_rejects_ids_wider_than_context():
    with pytest.raises(ValueError, match="context length is 8"):
        TextTransformer(**ARGS)(np.zeros((1, 9), "int32"))


def test_rejects_width_not_divisible_by_heads():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        TextTransformer(**{**ARGS, "num_heads": 3})


def test_save_and_load(tmp_path):
    encoder = TextTransformer(**{**ARGS, "activation": "gelu"})
    assert_model_saves(encoder, IDS, tmp_path)
