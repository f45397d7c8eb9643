import contextlib

import keras
import numpy as np
import pytest

from keras_clip import CLIPModel
from keras_clip.models import clip_presets

# Parameter counts of the OpenAI release as OpenCLIP builds it: the whole
# model (logit_scale included) and the image tower alone. BatchNorm running
# statistics are buffers there, not parameters, so they are not counted.
REFERENCE_COUNTS = {
    "RN50": (102_007_137, 38_316_896),
    "RN101": (119_688_033, 56_259_936),
    "RN50x4": (178_300_601, 87_137_080),
    "RN50x16": (290_979_217, 167_328_912),
    "RN50x64": (623_258_305, 420_380_352),
    "ViT-B/32": (151_277_313, 87_849_216),
    "ViT-B/16": (149_620_737, 86_192_640),
    "ViT-L/14": (427_616_513, 303_966_208),
    "ViT-L/14@336": (427_944_193, 304_293_888),
}


@contextlib.contextmanager
def shapes_only():
    """Builds models with their real shapes but no memory for values.

    Variables made in a StatelessScope defer their initialisation, and
    `initialize_variables=False` keeps them deferred on exit. Keras keeps
    them in its global state, though, and the next StatelessScope to exit
    (any later `fit` on JAX, a Keras application's build on TensorFlow)
    would initialise them all: gigabytes and minutes for the paper's
    presets, paid by whichever test runs next in this process. Clearing the
    session forgets them.
    """
    try:
        with keras.StatelessScope(initialize_variables=False):
            yield
    finally:
        keras.backend.clear_session()


def trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_every_paper_preset_has_a_reference_count():
    paper = [name for name in CLIPModel.presets
             if not name.startswith(("tiny-", "convnext-", "siglip-"))]
    assert sorted(paper) == sorted(REFERENCE_COUNTS)


def test_convnext_tiny_is_keras_applications_convnext_tiny_plus_a_projection():
    with shapes_only():
        model = CLIPModel.from_preset("convnext-tiny")
        reference = keras.applications.ConvNeXtTiny(
            include_top=False, include_preprocessing=False, weights=None, pooling="avg")
        counts = trainable_count(model.image_encoder), trainable_count(reference)
        text = trainable_count(model.text_encoder)
        vit_text = trainable_count(CLIPModel.from_preset("ViT-B/32").text_encoder)
    assert counts[0] == counts[1] + 768 * 512  # the projection, no bias
    assert counts[1] == 27_820_128  # ConvNeXt-T's 28.59M less its 1000-class head
    assert text == vit_text


@pytest.mark.parametrize("preset", list(REFERENCE_COUNTS))
def test_parameter_counts_equal_the_reference(preset):
    with shapes_only():
        model = CLIPModel.from_preset(preset)
        counts = (trainable_count(model), trainable_count(model.image_encoder))
    assert counts == REFERENCE_COUNTS[preset]


def test_model_names_are_keras_safe():
    assert clip_presets.model_name("ViT-L/14@336") == "clip_vit_l_14_336"


def test_dtype_reaches_the_towers():
    model = CLIPModel.from_preset("tiny-vit", dtype="mixed_bfloat16")
    assert model.image_encoder.dtype_policy.name == "mixed_bfloat16"
    assert model.text_encoder.blocks[0].compute_dtype == "bfloat16"
    assert model.logit_scale.dtype == "float32"


def test_dtype_survives_saving(tmp_path):
    model = CLIPModel.from_preset("tiny-bow", dtype="mixed_bfloat16")
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert loaded.text_encoder.token_embedding.compute_dtype == "bfloat16"
