import math

import keras
import numpy as np
import pytest

from keras_clip import CLIPModel
from keras_clip.training.clip_adamw import CLIPAdamW, decays
from tests.helpers import to_numpy

VIT_DECAYED = {
    "patch_embedding/conv/kernel", "projection/kernel",
    *(f"block_{i}/{name}/kernel" for i in range(2)
      for name in ("attn/in_proj", "attn/out_proj", "mlp_fc", "mlp_proj")),
}


@pytest.fixture(scope="module")
def models():
    # Built once: the JAX backend compiles each eager ResNet op per shape.
    return {preset: CLIPModel.from_preset(preset) for preset in ("tiny-vit", "tiny-resnet")}


def paths(model, rule):
    return sorted({v.path for v in model.trainable_variables if rule(v)})


def test_weight_decay_covers_exactly_the_weights_of_a_tiny_vit(models):
    model = models["tiny-vit"]
    # Both towers' blocks share layer-local paths; the text tower adds none.
    assert paths(model, decays) == sorted(VIT_DECAYED)
    skipped = paths(model, lambda v: not decays(v))
    for name in ("clip_tiny_vit/logit_scale", "patch_embedding/class_embedding",
                 "patch_embedding/position_embedding", "embedding/token_embedding",
                 "embedding/position_embedding", "ln_pre/gamma", "ln_post/beta",
                 "block_0/ln_1/gamma", "block_1/mlp_fc/bias", "ln_final/gamma"):
        assert name in skipped


def test_weight_decay_covers_exactly_the_weights_of_a_tiny_resnet(models):
    model = models["tiny-resnet"]
    image_paths = {v.path for v in model.image_encoder.trainable_variables}
    decayed = sorted(image_paths & set(paths(model, decays)))
    expected = sorted(
        [f"stem_conv{i}/kernel" for i in (1, 2, 3)]
        + [f"stage{s}_block0/{c}/kernel" for s in range(1, 5)
           for c in ("conv1", "conv2", "conv3", "downsample_conv")]
        + [f"attention_pooling/{p}_proj/kernel" for p in ("q", "k", "v", "c")]
    )
    assert decayed == expected
    # BatchNorm gains/offsets, biases and the pool's positional embedding are not.
    assert "attention_pooling/position_embedding" not in decayed
    assert not any("bn" in p or p.endswith("bias") for p in decayed)


def test_heads_are_the_projections_and_the_temperature(models):
    vit = models["tiny-vit"]
    is_head = CLIPAdamW(head_variables=vit.head_variables).is_head
    assert paths(vit, is_head) == ["clip_tiny_vit/logit_scale", "projection/kernel"]
    resnet = models["tiny-resnet"]
    is_head = CLIPAdamW(head_variables=resnet.head_variables).is_head
    assert paths(resnet, is_head) == [
        "attention_pooling/c_proj/bias", "attention_pooling/c_proj/kernel",
        "clip_tiny_resnet/logit_scale", "projection/kernel"]


@pytest.mark.parametrize("preset", ["tiny-vit", "tiny-resnet"])
def test_optimizers_saved_without_heads_find_the_same_ones(models, preset):
    # keras_clip 0.1 saved CLIPAdamW with no head_variables: its rule by path
    # must pick what the towers now declare.
    model = models[preset]
    told, saved = CLIPAdamW(head_variables=model.head_variables), CLIPAdamW()
    assert paths(model, told.is_head) == paths(model, saved.is_head)
    restored = CLIPAdamW.from_config(told.get_config())  # by path, as resumed
    assert paths(model, restored.is_head) == paths(model, told.is_head)


def apply_zero_gradients(model, optimizer):
    variables = model.trainable_variables
    before = [to_numpy(v) for v in variables]
    optimizer.apply([keras.ops.zeros(v.shape, v.dtype) for v in variables], variables)
    return variables, before


@pytest.mark.parametrize("preset", ["tiny-vit", "tiny-resnet"])
def test_a_step_shrinks_decayed_variables_by_lr_times_decay_and_no_others(models, preset):
    model = models[preset]
    optimizer = CLIPAdamW(learning_rate=0.1, weight_decay=0.2)
    # With zero gradients Adam's step is 0: only the decoupled decay moves weights.
    variables, before = apply_zero_gradients(model, optimizer)
    for variable, old in zip(variables, before):
        factor = 1 - 0.1 * 0.2 if decays(variable) else 1.0
        np.testing.assert_allclose(to_numpy(variable), old * factor, rtol=1e-6,
                                   err_msg=variable.path)


def test_tower_scale_zero_freezes_the_towers_but_not_the_heads():
    model = CLIPModel.from_preset("tiny-vit")
    optimizer = CLIPAdamW(learning_rate=0.01, weight_decay=0.0,
                          tower_learning_rate_scale=0.0, head_variables=model.head_variables)
    variables = model.trainable_variables
    before = [to_numpy(v) for v in variables]
    optimizer.apply([keras.ops.ones(v.shape, v.dtype) for v in variables], variables)
    for variable, old in zip(variables, before):
        moved = not np.allclose(to_numpy(variable), old)
        assert moved == optimizer.is_head(variable), variable.path


def test_config_round_trips_with_its_own_arguments():
    optimizer = CLIPAdamW(learning_rate=1e-3, weight_decay=0.1, beta_2=0.999,
                          epsilon=1e-8, tower_learning_rate_scale=0.5, global_clipnorm=1.0,
                          head_variables=["b/projection/kernel", "a/logit_scale"])
    config = optimizer.get_config()
    clone = CLIPAdamW.from_config(config)
    assert clone.get_config() == config
    assert config["weight_decay"] == 0.1 and config["tower_learning_rate_scale"] == 0.5
    assert config["head_variables"] == ["a/logit_scale", "b/projection/kernel"]
    assert math.isclose(float(clone.beta_2), 0.999)


def test_a_trained_model_loads_in_a_fresh_process_after_importing_keras_clip(tmp_path):
    import os
    import subprocess
    import sys

    model = CLIPModel.from_preset("tiny-vit")
    model.compile(optimizer=CLIPAdamW(1e-3))
    model.optimizer.build(model.trainable_variables)
    path = str(tmp_path / "trained.keras")
    model.save(path)
    code = ("import keras, keras_clip; m = keras.saving.load_model(%r); "
            "print(type(m.optimizer).__name__)" % path)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=dict(os.environ, KERAS_BACKEND=keras.backend.backend()),
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("CLIPAdamW")
