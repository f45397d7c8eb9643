"""One full-size checkpoint (ViT-B/32 as OpenAI released it) converts exactly."""

import numpy as np
import pytest
import torch

from keras_clip.convert import convert_checkpoint
from tests.convert import references
from tests.convert.convert_test import keras_outputs

# OpenAI's ViT-B/32 in OpenCLIP's config terms (with QuickGELU, as released).
VIT_B_32 = {
    "embed_dim": 512, "quick_gelu": True,
    "vision_cfg": {"image_size": 224, "layers": 12, "width": 768, "patch_size": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8,
                 "layers": 12},
}


@pytest.mark.slow
def test_vit_b_32_converts_by_preset_to_the_same_outputs(tmp_path):
    reference = references.open_clip_model(VIT_B_32)
    assert sum(p.numel() for p in reference.parameters()) == 151_277_313
    path = str(tmp_path / "ViT-B-32.pt")
    torch.save(reference.state_dict(), path)
    model, _, _ = convert_checkpoint("openai", path, preset="ViT-B/32")
    rng = np.random.default_rng(0)
    images = rng.normal(size=(2, 224, 224, 3)).astype("float32")
    token_ids = np.zeros((2, 77), "int32")
    token_ids[:, 0] = 49406
    token_ids[0, 1:5], token_ids[0, 5] = [320, 1125, 539, 2368], 49407
    token_ids[1, 1:76], token_ids[1, 76] = rng.integers(1, 49406, 75), 49407
    expected = references.torch_outputs(reference, images, token_ids)
    for name, ours, theirs in zip(("image", "text", "logits"),
                                  keras_outputs(model, images, token_ids), expected):
        np.testing.assert_allclose(ours, theirs, atol=1e-4, err_msg=name)
