"""The objectives `CLIPModel(objective=...)` knows by name."""

import keras

from keras_clip.losses.contrastive_objective import ContrastiveObjective
from keras_clip.losses.objective import Objective
from keras_clip.losses.sigmoid_objective import SigmoidObjective

#: Name → objective class; a new objective is one entry here.
OBJECTIVES = {
    ContrastiveObjective.name: ContrastiveObjective,
    SigmoidObjective.name: SigmoidObjective,
}


def get_objective(identifier):
    """An `Objective` from a name in `OBJECTIVES`, a serialised one, or itself."""
    if isinstance(identifier, Objective):
        return identifier
    if isinstance(identifier, dict):
        return keras.saving.deserialize_keras_object(identifier)
    if identifier in OBJECTIVES:
        return OBJECTIVES[identifier]()
    raise ValueError(
        f"Unknown objective {identifier!r}: use one of {', '.join(OBJECTIVES)}, "
        "or an Objective."
    )
