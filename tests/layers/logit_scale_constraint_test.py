import math

import numpy as np
import pytest

from keras_clip.layers.logit_scale_constraint import LogitScaleConstraint
from tests.helpers import to_numpy


def test_clips_to_bounds():
    constraint = LogitScaleConstraint()
    values = np.array([-1.0, 0.5, math.log(100.0) + 3], "float32")
    np.testing.assert_allclose(
        to_numpy(constraint(values)), [0.0, 0.5, math.log(100.0)], rtol=1e-6
    )


def test_config_round_trip():
    constraint = LogitScaleConstraint(0.5, 2.0)
    clone = LogitScaleConstraint.from_config(constraint.get_config())
    assert (clone.min_value, clone.max_value) == (0.5, 2.0)


def test_rejects_inverted_bounds():
    with pytest.raises(ValueError, match="min_value <= max_value"):
        LogitScaleConstraint(2.0, 1.0)
