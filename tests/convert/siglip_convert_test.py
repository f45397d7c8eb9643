"""A Hugging Face SiglipModel directory converts to the same outputs and ids.

The reference is transformers' own `SiglipModel` with random weights, saved
with `save_pretrained` beside a SentencePiece model trained here and the
released models' `preprocessor_config.json` (at this tower's size).
Tolerance 1e-4 (float32): both sides compute the same function.
"""

import io
import json
import os

import numpy as np
import pytest
import torch
import transformers
from PIL import Image

from keras_clip import CLIPModel, cli
from keras_clip.convert import ConversionError, convert_checkpoint
from keras_clip.data import image_ops
from keras_clip.data.siglip_tokenizer import SigLIPTokenizer
from keras_clip.data.tokenizer_spec import load_tokenizer
from tests.data.caption_corpus import caption_corpus
from tests.data.fixtures import encode, photo, write_sentence_piece_model
from tests.helpers import to_numpy
from tests.models.siglip_towers_test import TEXT, VISION

TOLERANCE = 1e-4
SIGLIP_TEXT = {**TEXT, "vocab_size": 800, "pad_token_id": 1}
# The released models' preprocessor_config.json, at this tower's size.
PREPROCESSOR = {"do_normalize": True, "do_rescale": True, "do_resize": True,
                "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
                "image_processor_type": "SiglipImageProcessor", "resample": 3,
                "rescale_factor": 1 / 255, "size": {"height": 36, "width": 36}}
CAPTIONS = ["a photo of a CAT.", "", "two dogs, running on the beach!", "東京の夜景"]


@pytest.fixture(scope="module")
def siglip_directory(tmp_path_factory):
    return write_siglip_directory(tmp_path_factory.mktemp("hf_siglip"))


def write_siglip_directory(root, name="siglip"):
    """`(reference, directory)`: a saved SiglipModel with random weights, and its files."""
    root.mkdir(parents=True, exist_ok=True)
    texts = [text.lower() for text in caption_corpus(1200, seed=0)]
    model_file = write_sentence_piece_model(root / "spiece", texts)
    config = transformers.SiglipConfig(text_config=dict(SIGLIP_TEXT),
                                       vision_config=dict(VISION))
    torch.manual_seed(0)
    reference = transformers.SiglipModel(config).eval()
    with torch.no_grad():  # released models hold a trained scale and bias, not 0 and 0
        reference.logit_scale.fill_(2.3)
        reference.logit_bias.fill_(-4.0)
    directory = root / name
    reference.save_pretrained(str(directory))
    transformers.SiglipTokenizer(model_file, model_max_length=16).save_pretrained(
        str(directory))
    (directory / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR))
    return reference, str(directory)


def images():
    """Encoded images of other shapes than the square: squashing shows."""
    return [encode(photo(0, (70, 30)), "PNG"), encode(photo(1, (36, 36)), "PNG"),
            encode(photo(2, (20, 50)), "PNG")]


def reference_pixels(image_bytes, size=36):
    """SiglipImageProcessor's recipe with PIL: squash, bicubic, to [-1, 1]."""
    image = Image.open(io.BytesIO(image_bytes)).convert("RGB").resize((size, size),
                                                                      Image.BICUBIC)
    return (np.asarray(image, np.float32) / 255.0 - 0.5) / 0.5


def reference_outputs(reference, directory, pixels):
    hf_tokenizer = transformers.SiglipTokenizer.from_pretrained(directory)
    ids = hf_tokenizer(CAPTIONS, padding="max_length", max_length=16, truncation=True)
    ids = np.array(ids["input_ids"])
    with torch.no_grad():
        out = reference(input_ids=torch.from_numpy(ids).long(),
                        pixel_values=torch.from_numpy(pixels.transpose(0, 3, 1, 2)))
    return ids, out


def assert_matches(model, tokenizer, reference, directory):
    encoded = images()
    expected_pixels = np.stack([reference_pixels(image) for image in encoded])
    pixels = np.stack([image_ops.preprocess_for_eval(
        image, 36, **model.preprocessing.evaluation_options).numpy() for image in encoded])
    # PIL's resize but for its fixed-point weights: one grey level (2/255
    # here) on a few pixels.
    assert np.abs(pixels - expected_pixels).max() <= 2 / 255 + 1e-6
    assert np.abs(pixels - expected_pixels).mean() <= 1e-4
    ids, out = reference_outputs(reference, directory, pixels)
    np.testing.assert_array_equal(np.asarray(tokenizer(CAPTIONS)), ids)
    np.testing.assert_allclose(to_numpy(model.encode_image(pixels)),
                               out.image_embeds.numpy(), atol=TOLERANCE)
    np.testing.assert_allclose(to_numpy(model.encode_text(ids)),
                               out.text_embeds.numpy(), atol=TOLERANCE)
    np.testing.assert_allclose(to_numpy(model.similarity(pixels, ids)),
                               out.logits_per_image.numpy(), atol=TOLERANCE)


def test_a_siglip_directory_converts_to_transformers_outputs(siglip_directory):
    reference, directory = siglip_directory
    model, tokenizer, preprocessing = convert_checkpoint("hf", directory)
    assert isinstance(tokenizer, SigLIPTokenizer) and tokenizer.context_length == 16
    assert model.objective.name == "sigmoid"
    assert (preprocessing["resize"], preprocessing["pad_id"], preprocessing["mean"]) == (
        "squash", 1, [0.5] * 3)
    assert_matches(model, tokenizer, reference, directory)


def test_the_cli_writes_a_siglip_preset_that_loads(siglip_directory, tmp_path):
    reference, directory = siglip_directory
    out = str(tmp_path / "converted")
    assert cli.main(["convert", "--from", "hf", directory, "--out", out]) == 0
    assert sorted(os.listdir(out)) == ["model.keras", "preprocessing.json", "spiece.model"]
    model = CLIPModel.from_preset(out)
    tokenizer = load_tokenizer(out)
    assert isinstance(tokenizer, SigLIPTokenizer) and tokenizer.context_length == 16
    assert model.preprocessing.resize == "squash"
    assert_matches(model, tokenizer, reference, directory)


def test_a_config_or_tokenizer_that_does_not_fit_is_refused(siglip_directory, tmp_path):
    _, directory = siglip_directory
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in os.listdir(directory):
        (broken / name).write_bytes(open(os.path.join(directory, name), "rb").read())
    config = json.loads((broken / "config.json").read_text())
    config["vision_config"]["vision_use_head"] = False
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConversionError, match="vision_use_head=False"):
        convert_checkpoint("hf", str(broken))
    config["vision_config"]["vision_use_head"] = True
    config["text_config"]["vocab_size"] = 801
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConversionError, match="800 pieces but config.json's text tower "
                                              "embeds 801"):
        convert_checkpoint("hf", str(broken))
    config["text_config"]["vocab_size"] = 800
    (broken / "config.json").write_text(json.dumps(config))
    tokenizer_config = json.loads((broken / "tokenizer_config.json").read_text())
    (broken / "tokenizer_config.json").write_text(json.dumps(
        {**tokenizer_config, "do_lower_case": False}))
    with pytest.raises(ConversionError, match="do_lower_case=False"):
        convert_checkpoint("hf", str(broken))
    (broken / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    for changes, message in (({"rescale_factor": 1.0}, "rescales pixels by 1.0"),
                             ({"size": {"shortest_edge": 36}}, "resizes to {'shortest_edge'"),
                             ({"image_mean": "grey"}, "image_mean='grey' is not 1 or 3")):
        (broken / "preprocessor_config.json").write_text(json.dumps({**PREPROCESSOR,
                                                                     **changes}))
        with pytest.raises(ConversionError, match=message):
            convert_checkpoint("hf", str(broken))
    config["model_type"] = "siglip2"
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConversionError, match="'siglip2' model"):
        convert_checkpoint("hf", str(broken))


def test_transformers_5s_processor_config_and_its_spellings_are_read(siglip_directory,
                                                                     tmp_path):
    # SiglipProcessor.save_pretrained writes processor_config.json (the image
    # processor nested), not preprocessor_config.json; sizes and means may be
    # one number.
    _, directory = siglip_directory
    copy = tmp_path / "processor"
    copy.mkdir()
    for name in os.listdir(directory):
        if name != "preprocessor_config.json":
            (copy / name).write_bytes(open(os.path.join(directory, name), "rb").read())
    nested = {**PREPROCESSOR, "size": 36, "image_mean": 0.25, "image_std": [0.5, 0.4, 0.3]}
    (copy / "processor_config.json").write_text(json.dumps(
        {"image_processor": nested, "processor_class": "SiglipProcessor"}))
    _, _, preprocessing = convert_checkpoint("hf", str(copy))
    assert (preprocessing["mean"], preprocessing["std"]) == ([0.25] * 3, [0.5, 0.4, 0.3])
