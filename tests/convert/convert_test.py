"""Converted checkpoints reproduce their reference implementation's outputs.

References are OpenCLIP's and Hugging Face transformers' own models with
random weights. Tolerance 1e-4 (float32): both sides compute the same
function; the differences measured are ~4e-6 on logits (scale 14.3), from
summation order.
"""

import os

import keras
import numpy as np
import pytest
import torch

from keras_clip import CLIPModel, CLIPTokenizer, cli
from keras_clip.convert import (
    CheckpointError,
    ConversionError,
    convert_checkpoint,
)
from tests.convert import references

TOLERANCE = 1e-4
CONTEXT = 16
TEXT_CFG = {"context_length": CONTEXT, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}
OPEN_CLIP_CONFIGS = {
    "vit_quick_gelu": {
        "embed_dim": 16, "quick_gelu": True, "text_cfg": TEXT_CFG,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8,
                       "head_width": 32},
    },
    "vit_gelu": {
        "embed_dim": 16, "text_cfg": TEXT_CFG,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8,
                       "head_width": 32, "mlp_ratio": 2.0},
    },
    # Two blocks in the first stage: one with a projection shortcut, one without.
    "resnet": {
        "embed_dim": 16, "text_cfg": TEXT_CFG,
        "vision_cfg": {"image_size": 64, "layers": [2, 1, 1, 1], "width": 8, "head_width": 16},
    },
}
HF_TEXT = {"hidden_size": 32, "intermediate_size": 128, "num_hidden_layers": 2,
           "num_attention_heads": 2, "max_position_embeddings": CONTEXT}
HF_VISION = {"hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 2,
             "num_attention_heads": 2, "image_size": 32, "patch_size": 8}


def inputs(image_size, seed=0):
    """Three images and three captions of different lengths (ids, 0-padded)."""
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(3, image_size, image_size, 3)).astype("float32")
    token_ids = np.zeros((3, CONTEXT), "int32")
    for row, length in enumerate((2, 7, CONTEXT - 1)):
        token_ids[row, 0] = 49406
        token_ids[row, 1:length] = rng.integers(1, 49406, length - 1)
        token_ids[row, length] = 49407
    return images, token_ids


def keras_outputs(model, images, token_ids):
    return tuple(
        keras.ops.convert_to_numpy(x)
        for x in (model.encode_image(images), model.encode_text(token_ids),
                  model.similarity(images, token_ids))
    )


def assert_parity(model, reference, image_size):
    images, token_ids = inputs(image_size)
    expected = references.torch_outputs(reference, images, token_ids)
    for name, ours, theirs in zip(("image", "text", "logits"),
                                  keras_outputs(model, images, token_ids), expected):
        np.testing.assert_allclose(ours, theirs, atol=TOLERANCE, err_msg=name)
    # The comparison means something: the captions' embeddings differ.
    assert np.abs(expected[1][0] - expected[1][1]).max() > 0.1


@pytest.mark.parametrize("name", sorted(OPEN_CLIP_CONFIGS))
def test_open_clip_state_dict_converts_to_the_same_outputs(name, tmp_path):
    config = OPEN_CLIP_CONFIGS[name]
    reference = references.open_clip_model(config)
    path = str(tmp_path / "open_clip.pt")
    torch.save(reference.state_dict(), path)
    model, _, preprocessing = convert_checkpoint("open_clip", path, config=config)
    assert_parity(model, reference, config["vision_cfg"]["image_size"])
    assert preprocessing["image_size"] == config["vision_cfg"]["image_size"]


# tiny-vit's shapes in OpenCLIP's terms, QuickGELU as in OpenAI's release.
TINY_VIT_OPENAI = {
    "embed_dim": 64, "quick_gelu": True,
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2,
                 "layers": 2},
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8,
                   "head_width": 32},
}


@pytest.fixture(scope="module")
def openai_reference():
    return references.open_clip_model(TINY_VIT_OPENAI, seed=3)


def test_openai_layout_from_safetensors_by_preset(openai_reference, tmp_path):
    from safetensors.torch import save_file

    path = str(tmp_path / "openai.safetensors")
    save_file({k: v.contiguous() for k, v in openai_reference.state_dict().items()}, path)
    model, tokenizer, _ = convert_checkpoint("openai", path, preset="tiny-vit")
    assert_parity(model, openai_reference, 32)
    ids = keras.ops.convert_to_numpy(tokenizer(["hello world"]))
    assert ids[0, :4].tolist() == [49406, 3306, 1002, 49407]


def test_openai_torchscript_archive_converts(openai_reference, tmp_path):
    # OpenAI's release files are TorchScript archives, not state-dict pickles.
    openai_reference.output_dict = False
    traced = torch.jit.trace(
        openai_reference, (torch.zeros(1, 3, 32, 32), torch.zeros(1, 16, dtype=torch.long)),
        strict=False, check_trace=False)
    path = str(tmp_path / "ViT-tiny.pt")
    traced.save(path)
    model, _, _ = convert_checkpoint("openai", path, preset="tiny-vit")
    assert_parity(model, openai_reference, 32)


@pytest.fixture(scope="module")
def hf_directory(tmp_path_factory):
    reference = references.hf_clip_model(HF_TEXT, HF_VISION, projection_dim=16)
    directory = str(tmp_path_factory.mktemp("hf_clip"))
    reference.save_pretrained(directory)
    CLIPTokenizer.from_openai().save_vocabulary(directory)
    return reference, directory


def test_hf_directory_converts_to_the_same_outputs(hf_directory):
    reference, directory = hf_directory
    assert os.path.exists(os.path.join(directory, "model.safetensors"))
    model, tokenizer, preprocessing = convert_checkpoint("hf", directory)
    assert_parity(model, reference, 32)
    assert tokenizer.context_length == CONTEXT
    assert preprocessing["context_length"] == CONTEXT


def test_cli_writes_a_preset_directory_that_from_preset_loads(hf_directory, tmp_path):
    reference, directory = hf_directory
    out = str(tmp_path / "converted")
    assert cli.main(["convert", "--from", "hf", directory, "--out", out]) == 0
    assert sorted(os.listdir(out)) == [
        "merges.txt", "model.keras", "preprocessing.json", "vocab.json"]
    assert_parity(CLIPModel.from_preset(out), reference, 32)
    tokenizer = CLIPTokenizer.from_preset(out)
    assert tokenizer.context_length == CONTEXT
    assert tokenizer(["a photo of a cat"]).shape == (1, CONTEXT)


def test_hf_tokenizer_directory_gives_transformers_ids(hf_directory):
    """Same ids as transformers' CLIPTokenizer, but for its two known departures
    from OpenAI's tokenizer (which ours follows, as the weights were trained
    with it): transformers skips ftfy's repairs (e.g. the ligature "ǅ" → "dž"),
    so its input here is ftfy-fixed first; and it lowercases a word-final "Σ"
    to "σ" where Python's `str.lower` gives "ς"."""
    import re

    import ftfy
    from transformers import CLIPTokenizer as HFTokenizer

    from tests.data.caption_corpus import caption_corpus

    _, directory = hf_directory
    files = [os.path.join(directory, name) for name in ("vocab.json", "merges.txt")]
    ours = CLIPTokenizer.from_hf(*files, context_length=77)
    theirs = HFTokenizer(*files)
    corpus = caption_corpus(1000)
    expected = theirs([ftfy.fix_text(text) for text in corpus], max_length=77,
                      truncation=True)["input_ids"]
    got = keras.ops.convert_to_numpy(ours(corpus))
    differ = [
        text for text, ids, row in zip(corpus, expected, got)
        if row[: len(ids)].tolist() != ids or row[len(ids):].any()  # ours pads with 0
    ]
    final_sigma = [text for text in corpus if re.search(r"Σ(?!\w)", text)]
    assert set(differ) <= set(final_sigma), [t for t in differ if t not in final_sigma][:3]
    assert len(corpus) - len(differ) >= 900


def save_state_dict(reference, tmp_path, edit):
    state = dict(reference.state_dict())
    edit(state)
    path = str(tmp_path / "edited.pt")
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def small_reference():
    return references.open_clip_model(OPEN_CLIP_CONFIGS["vit_quick_gelu"])


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.pop("visual.ln_post.bias"), "missing weight 'visual.ln_post.bias'"),
    (lambda s: s.update({"visual.extra.weight": torch.zeros(2)}),
     "unexpected weight 'visual.extra.weight'"),
    (lambda s: s.update({"text_projection": torch.zeros(32, 8)}),
     r"weight 'text_projection' has shape \(32, 8\).*needs \(32, 16\)"),
])
def test_mismatched_state_dicts_fail_naming_the_weight(small_reference, tmp_path, edit,
                                                       message):
    path = save_state_dict(small_reference, tmp_path, edit)
    with pytest.raises(ConversionError, match=message):
        convert_checkpoint("open_clip", path, config=OPEN_CLIP_CONFIGS["vit_quick_gelu"])


class WritesAFile:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):  # unpickling this object would create the file
        return (open, (self.path, "w"))


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = str(tmp_path / "evil.pt")
    torch.save({"visual.proj": torch.zeros(2), "payload": WritesAFile(str(marker))}, path)
    with pytest.raises(CheckpointError, match="Refused to load"):
        convert_checkpoint("openai", path, preset="tiny-vit")
    assert not marker.exists()


def test_truncated_safetensors_and_unsupported_options_are_reported(tmp_path,
                                                                   small_reference):
    from safetensors.torch import save_file

    path = tmp_path / "model.safetensors"
    save_file(dict(small_reference.state_dict()), str(path))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="truncated"):
        convert_checkpoint("open_clip", str(path), config=OPEN_CLIP_CONFIGS["vit_quick_gelu"])
    config = dict(OPEN_CLIP_CONFIGS["vit_gelu"])
    config["vision_cfg"] = {**config["vision_cfg"], "pool_type": "avg"}
    with pytest.raises(ValueError, match=r"vision_cfg.pool_type='avg' is not implemented"):
        convert_checkpoint("open_clip", str(path), config=config)
    with pytest.raises(ValueError, match="State the activation"):
        convert_checkpoint("open_clip", str(path), preset="tiny-vit")


def smooth_images(count, size, seed=0):
    """Images with structure at the scale of patches, not of pixels."""
    rng = np.random.default_rng(seed)
    coarse = rng.normal(size=(count, 4, 4, 3)).astype("float32")
    return keras.ops.convert_to_numpy(
        keras.ops.image.resize(coarse, (size, size), interpolation="bilinear"))


@pytest.mark.parametrize("name, new_size", [("vit_quick_gelu", 48), ("resnet", 96)])
def test_positions_interpolate_to_a_larger_image_size(name, new_size, tmp_path):
    """Metric: mean cosine between the original model's embedding of an image
    and the resized model's embedding of that image upsampled, against the
    same resized model with its positions scrambled. Measured (TensorFlow):
    ViT 32→48 px 0.999 vs 0.72; ResNet 64→96 px 0.988 vs 0.23."""
    from keras_clip.convert import with_image_size

    config = OPEN_CLIP_CONFIGS[name]
    state = references.open_clip_model(config).state_dict()
    # A random ResNet's attention pool barely reads its positions (their
    # init std is width^-0.5 beside BatchNorm-scaled features); scaled up,
    # they matter as in a trained model, and the test can tell them apart.
    state["visual.attnpool.positional_embedding"] = (
        state.get("visual.attnpool.positional_embedding", torch.zeros(0)) * 30)
    state = {k: v for k, v in state.items() if v.numel()}
    path = str(tmp_path / "model.pt")
    torch.save(state, path)
    size = config["vision_cfg"]["image_size"]
    model, _, _ = convert_checkpoint("open_clip", path, config=config)
    resized, _, preprocessing = convert_checkpoint(
        "open_clip", path, config=config, image_size=new_size)
    assert preprocessing["image_size"] == resized.image_size == new_size
    images = smooth_images(8, size)
    upsampled = keras.ops.image.resize(images, (new_size, new_size), interpolation="bicubic")
    original = keras.ops.convert_to_numpy(model.encode_image(images))
    interpolated = keras.ops.convert_to_numpy(resized.encode_image(upsampled))
    cosine = np.sum(original * interpolated, axis=1).mean()

    control = with_image_size(model, new_size)  # then scramble its positions
    tower = control.image_encoder
    positions = (tower.patch_embedding if name.startswith("vit") else tower.attention_pooling
                 ).position_embedding
    scrambled = np.random.default_rng(0).permutation(keras.ops.convert_to_numpy(positions))
    positions.assign(scrambled)
    control_embeddings = keras.ops.convert_to_numpy(control.encode_image(upsampled))
    control_cosine = np.sum(original * control_embeddings, axis=1).mean()
    assert cosine > 0.95, cosine
    assert cosine > control_cosine + 0.2, (cosine, control_cosine)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="its subprocess runs on TensorFlow whatever the suite's backend")
def test_safetensors_conversion_needs_no_torch(hf_directory, tmp_path):
    import subprocess
    import sys

    _, directory = hf_directory
    script = (
        "import sys\n"
        "class NoTorch:\n"  # any `import torch` now fails
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch': raise ImportError('no torch here')\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "from keras_clip.convert import convert_checkpoint, save_converted\n"
        f"save_converted(*convert_checkpoint('hf', {directory!r}), {str(tmp_path / 'm.keras')!r})\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, "KERAS_BACKEND": "tensorflow"}, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "m.keras").exists()
