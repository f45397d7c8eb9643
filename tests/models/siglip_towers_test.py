"""SigLIP's towers against Hugging Face's `SiglipModel` (random weights, installed from PyPI).

The reference is transformers' own model code, built from a config; its
weights are copied in along `convert/weight_maps.hf_siglip_entries`, so a
difference in the patchify, the positions, the norms, the blocks, the
attention-pooling head, the last-position pooling or the logits fails.
"""

import numpy as np
import pytest
import torch
import transformers

from keras_clip import CLIPModel
from keras_clip.convert import weight_maps
from keras_clip.convert.converter import load_weights
from keras_clip.models import clip_presets
from keras_clip.models.siglip_text_transformer import SigLIPTextTransformer
from keras_clip.models.siglip_vision_transformer import SigLIPVisionTransformer
from tests.helpers import assert_model_saves, to_numpy
from tests.models.clip_presets_test import shapes_only, trainable_count

# Widths that no ratio gives (96 = 1.5 × 64), an image side the patch does
# not divide (36 = 4 × 8 + 4 unread), and a text projection.
VISION = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2,
              num_attention_heads=4, image_size=36, patch_size=8)
TEXT = dict(vocab_size=1000, max_position_embeddings=16, hidden_size=48,
            intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
            projection_size=64)


def reference_model(vision=VISION, text=TEXT):
    config = transformers.SiglipConfig(text_config=dict(text), vision_config=dict(vision))
    torch.manual_seed(0)
    return transformers.SiglipModel(config).eval()


def keras_model(vision=VISION, text=TEXT):
    image = SigLIPVisionTransformer(
        image_size=vision["image_size"], patch_size=vision["patch_size"],
        hidden_dim=vision["hidden_size"], num_layers=vision["num_hidden_layers"],
        num_heads=vision["num_attention_heads"], mlp_dim=vision["intermediate_size"],
        name="image_encoder")
    text_encoder = SigLIPTextTransformer(
        vocabulary_size=text["vocab_size"], context_length=text["max_position_embeddings"],
        hidden_dim=text["hidden_size"], num_layers=text["num_hidden_layers"],
        num_heads=text["num_attention_heads"], mlp_dim=text["intermediate_size"],
        output_dim=text["projection_size"], name="text_encoder")
    return CLIPModel(image, text_encoder, objective="sigmoid")


@pytest.fixture(scope="module")
def pair():
    reference = reference_model()
    model = keras_model()
    weights = {name: value.detach().numpy() for name, value in reference.state_dict().items()}
    load_weights(model, weights, weight_maps.hf_siglip_entries(model))
    return reference, model


def test_embeddings_and_logits_equal_transformers(pair):
    reference, model = pair
    rng = np.random.default_rng(0)
    images = rng.normal(size=(3, 36, 36, 3)).astype("float32")
    token_ids = rng.integers(0, 1000, size=(4, 16)).astype("int32")
    token_ids[:, 10:] = 1  # padded as released SigLIPs pad: the last position reads it
    with torch.no_grad():
        out = reference(input_ids=torch.from_numpy(token_ids).long(),
                        pixel_values=torch.from_numpy(images.transpose(0, 3, 1, 2)))
    embeddings = model({"images": images, "token_ids": token_ids})
    # Tolerance: float32 through 2 blocks and the head, against entries of order 1.
    np.testing.assert_allclose(to_numpy(embeddings["image_embeddings"]),
                               out.image_embeds.numpy(), atol=1e-4)
    np.testing.assert_allclose(to_numpy(embeddings["text_embeddings"]),
                               out.text_embeds.numpy(), atol=1e-4)
    np.testing.assert_allclose(to_numpy(model.similarity(images, token_ids)),
                               out.logits_per_image.numpy(), atol=1e-4)


def test_the_unread_pixels_and_the_padding_matter_as_in_transformers(pair):
    _, model = pair
    rng = np.random.default_rng(1)
    images = rng.normal(size=(1, 36, 36, 3)).astype("float32")
    edge = images.copy()
    edge[:, 32:, :] += 5.0  # beyond the last whole patch: never read
    np.testing.assert_array_equal(to_numpy(model.encode_image(edge)),
                                  to_numpy(model.encode_image(images)))
    token_ids = np.ones((1, 16), "int32")
    token_ids[0, :4] = [5, 6, 7, 8]
    other = token_ids.copy()
    other[0, 0] = 9  # bidirectional: the last position sees the first token
    assert np.abs(to_numpy(model.encode_text(other))
                  - to_numpy(model.encode_text(token_ids))).max() > 1e-4


def test_rows_trimmed_of_padding_embed_as_whole_rows(pair):
    # A pipeline that trims each batch to its longest caption (make_dataset's
    # default) must not move the last position the tower reads.
    _, model = pair
    token_ids = np.zeros((2, 16), "int32")  # the tower's padding_id
    token_ids[:, :5] = [[5, 6, 7, 8, 9], [10, 11, 12, 0, 0]]
    whole = to_numpy(model.encode_text(token_ids))
    for width in (5, 9):
        np.testing.assert_allclose(to_numpy(model.encode_text(token_ids[:, :width])), whole,
                                   atol=1e-6)
    with pytest.raises(ValueError, match="17 positions but the context length is 16"):
        model.encode_text(np.ones((1, 17), "int32"))


@pytest.mark.parametrize("preset", ["siglip-base-patch16-224", "siglip-so400m-patch14-384"])
def test_preset_parameter_counts_equal_transformers(preset):
    image_args = clip_presets.PRESETS[preset]["image"][1]
    text_args = clip_presets.PRESETS[preset]["text"][1]
    shape = dict(hidden_size=image_args["hidden_dim"], intermediate_size=image_args["mlp_dim"],
                 num_hidden_layers=image_args["num_layers"],
                 num_attention_heads=image_args["num_heads"])
    config = transformers.SiglipConfig(
        vision_config=dict(shape, image_size=image_args["image_size"],
                           patch_size=image_args["patch_size"]),
        text_config=dict(shape, vocab_size=text_args["vocabulary_size"],
                         max_position_embeddings=text_args["context_length"]))
    with torch.device("meta"):  # shapes only
        reference = transformers.SiglipModel(config)
    expected = (sum(p.numel() for p in reference.parameters()),
                sum(p.numel() for p in reference.vision_model.parameters()))
    with shapes_only():
        model = CLIPModel.from_preset(preset)
        counts = (trainable_count(model), trainable_count(model.image_encoder))
        assert model.objective.name == "sigmoid"
        assert model.preprocessing.mean == (0.5, 0.5, 0.5)
    assert counts == expected
    # The released sizes (Hugging Face's model cards: 203M and 878M).
    assert counts[0] == {"siglip-base-patch16-224": 203_155_970,
                         "siglip-so400m-patch14-384": 877_960_498}[preset]


def test_tiny_siglip_saves_and_loads(tmp_path):
    model = CLIPModel.from_preset("tiny-siglip")
    inputs = {"images": np.zeros((2, 32, 32, 3), "uint8"),
              "token_ids": np.ones((2, 16), "int32")}
    loaded = assert_model_saves(model, inputs, tmp_path)
    assert loaded.objective.name == "sigmoid"
    assert loaded.preprocessing == model.preprocessing


def test_positions_without_a_class_token_interpolate_to_another_size():
    from keras_clip.models.resolution import interpolate_positions, with_image_size

    model = CLIPModel.from_preset("tiny-siglip")  # 32 px in patches of 8: a 4 × 4 grid
    ramp = np.repeat(np.arange(4.0, dtype="float32"), 4)[:, None] * np.ones((1, 64))
    model.image_encoder.patch_embedding.position_embedding.assign(ramp)  # row index
    resized = with_image_size(model, 48)  # a 6 × 6 grid
    positions = to_numpy(resized.image_encoder.patch_embedding.position_embedding)
    assert positions.shape == (36, 64)
    rows = positions[:, 0].reshape(6, 6)
    np.testing.assert_allclose(rows, rows[:, :1] * np.ones((1, 6)), atol=1e-5)  # along columns
    assert (np.diff(rows[:, 0]) > 0).all()  # and still increasing down the rows
    assert resized.objective.name == "sigmoid"
    assert tuple(resized.encode_image(np.zeros((1, 48, 48, 3), "float32")).shape) == (1, 64)
    with pytest.raises(ValueError, match="not a square grid"):
        interpolate_positions(np.zeros((3, 8)), 4)
