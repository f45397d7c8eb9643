import numpy as np
import pytest

from keras_clip.models.bag_of_words_encoder import BagOfWordsEncoder
from tests.helpers import assert_model_saves, to_numpy

ARGS = dict(vocabulary_size=100, context_length=8, hidden_dim=32, output_dim=16)
IDS = np.array([[98, 5, 6, 99, 0, 0, 0, 0]], "int32")


def test_output_shape():
    assert tuple(BagOfWordsEncoder(**ARGS)(IDS).shape) == (1, 16)


def test_ignores_order_and_padding():
    encoder = BagOfWordsEncoder(**ARGS)
    shuffled = np.array([[6, 0, 99, 5, 0, 98, 0]], "int32")
    np.testing.assert_allclose(
        to_numpy(encoder(IDS)), to_numpy(encoder(shuffled)), atol=1e-6
    )


def test_is_projected_mean_of_embeddings():
    encoder = BagOfWordsEncoder(**ARGS)
    table = to_numpy(encoder.token_embedding.embeddings)
    kernel = to_numpy(encoder.projection.kernel)
    expected = table[[98, 5, 6, 99]].mean(0) @ kernel
    np.testing.assert_allclose(to_numpy(encoder(IDS))[0], expected, atol=1e-6)


def test_rejects_ids_wider_than_context():
    with pytest.raises(ValueError, match="context length is 8"):
        BagOfWordsEncoder(**ARGS)(np.zeros((1, 9), "int32"))


def test_save_and_load(tmp_path):
    assert_model_saves(BagOfWordsEncoder(**ARGS), IDS, tmp_path)
