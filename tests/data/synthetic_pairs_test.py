import numpy as np
import pytest

from keras_clip.data.synthetic_pairs import synthetic_pairs

pytestmark = pytest.mark.backend_independent


def test_shapes_and_caption_framing():
    pairs = synthetic_pairs(20, image_size=8, context_length=6, vocabulary_size=50)
    assert pairs["images"].shape == (20, 8, 8, 3)
    assert pairs["token_ids"].shape == (20, 6)
    for row in pairs["token_ids"]:
        end = list(row).index(49)  # exactly one end-of-text, then padding
        assert end >= 1 and (row[:end] > 0).all() and (row[:end] < 49).all()
        assert (row[end + 1:] == 0).all()


def test_seeded():
    a, b = synthetic_pairs(4, seed=3), synthetic_pairs(4, seed=3)
    np.testing.assert_array_equal(a["token_ids"], b["token_ids"])
    assert not np.array_equal(a["images"], synthetic_pairs(4, seed=4)["images"])


def test_rejects_too_short_context():
    with pytest.raises(ValueError, match="at least 3"):
        synthetic_pairs(2, context_length=2)
