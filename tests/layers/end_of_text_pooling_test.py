import numpy as np

from keras_clip.layers.end_of_text_pooling import EndOfTextPooling
from tests.helpers import assert_layer_round_trip, to_numpy

HIDDEN = np.arange(2 * 6 * 3, dtype="float32").reshape(2, 6, 3)


def test_reads_first_end_of_text_even_when_not_the_largest_id():
    pool = EndOfTextPooling(end_of_text_id=5)
    # Row 0: end-of-text at 2 and again at 4; id 9 > 5 elsewhere. Row 1: at 5.
    ids = np.array([[1, 9, 5, 9, 5, 0], [1, 2, 3, 4, 9, 5]], "int32")
    np.testing.assert_array_equal(to_numpy(pool(HIDDEN, ids)), HIDDEN[[0, 1], [2, 5]])


def test_falls_back_to_last_non_padding_token():
    pool = EndOfTextPooling(end_of_text_id=5)
    ids = np.array([[1, 2, 3, 0, 0, 0], [0, 0, 0, 0, 0, 0]], "int32")
    np.testing.assert_array_equal(to_numpy(pool(HIDDEN, ids)), HIDDEN[[0, 1], [2, 0]])


def test_config_round_trip():
    pool = EndOfTextPooling(end_of_text_id=7, padding_id=1)
    assert_layer_round_trip(pool, HIDDEN, np.array([[2, 7, 1, 1, 1, 1]] * 2, "int32"))
