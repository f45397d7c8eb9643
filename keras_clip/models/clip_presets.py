"""The CLIP paper's architectures as data: exact constructor arguments.

Each preset names a tower class and its arguments, and may name its
objective and preprocessing (CLIP's softmax and OpenAI's record if not).
The nine paper presets have the shapes of the released models (their
parameter counts equal the reference implementation's); the `siglip-*`
presets have those of Google's released SigLIPs (equal to Hugging Face's
`SiglipModel`), with the sigmoid objective; `convnext-tiny` is ConvNeXt-T
with ViT-B/32's text tower; the `tiny-*` presets are for tests and demos. A
new tower is registered in `TOWERS`.
"""

import os

from keras_clip import files
from keras_clip.models.bag_of_words_encoder import BagOfWordsEncoder
from keras_clip.models.convnext_encoder import ConvNeXtEncoder
from keras_clip.models.modified_resnet import ModifiedResNet
from keras_clip.models.siglip_text_transformer import SigLIPTextTransformer
from keras_clip.models.siglip_vision_transformer import SigLIPVisionTransformer
from keras_clip.models.text_transformer import TextTransformer
from keras_clip.models.vision_transformer import VisionTransformer
from keras_clip.preprocessing import Preprocessing


def default_preprocessing(image_size, context_length):
    """OpenAI's preprocessing record (bicubic, shortest side, centre crop), as a dict."""
    return Preprocessing(image_size, context_length).to_dict()


TOWERS = {
    cls.__name__: cls
    for cls in (VisionTransformer, ModifiedResNet, ConvNeXtEncoder, TextTransformer,
                BagOfWordsEncoder, SigLIPVisionTransformer, SigLIPTextTransformer)
}
TOWER_PARTS = ("image", "text")
# SigLIP's pixels are normalised to [-1, 1].
SIGLIP_PIXELS = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}


def _text(hidden_dim, num_heads, output_dim):
    # Every paper model's text tower: 12 layers, 49,408 tokens, context 77.
    return (
        "TextTransformer",
        {
            "vocabulary_size": 49408,
            "context_length": 77,
            "hidden_dim": hidden_dim,
            "num_layers": 12,
            "num_heads": num_heads,
            "output_dim": output_dim,
        },
    )


def _vit(image_size, patch_size, hidden_dim, num_layers, output_dim):
    return (
        "VisionTransformer",
        {
            "image_size": image_size,
            "patch_size": patch_size,
            "hidden_dim": hidden_dim,
            "num_layers": num_layers,
            "num_heads": hidden_dim // 64,
            "output_dim": output_dim,
        },
    )


def _resnet(image_size, blocks_per_stage, width, output_dim):
    return (
        "ModifiedResNet",
        {
            "image_size": image_size,
            "blocks_per_stage": blocks_per_stage,
            "width": width,
            "num_heads": width * 32 // 64,
            "output_dim": output_dim,
        },
    )


def _siglip(image_size, patch_size, hidden_dim, num_layers, num_heads, mlp_dim):
    # A released SigLIP: both towers of one shape, 32,000 ids, 64 positions.
    shape = {"hidden_dim": hidden_dim, "num_layers": num_layers, "num_heads": num_heads,
             "mlp_dim": mlp_dim}
    return {
        "image": ("SigLIPVisionTransformer",
                  {"image_size": image_size, "patch_size": patch_size, **shape}),
        "text": ("SigLIPTextTransformer",
                 {"vocabulary_size": 32000, "context_length": 64, **shape}),
        "objective": "sigmoid",
        "preprocessing": SIGLIP_PIXELS,
    }


_TINY_VIT = {
    "image_size": 32,
    "patch_size": 8,
    "hidden_dim": 64,
    "num_layers": 2,
    "num_heads": 2,
    "output_dim": 64,
}
_TINY_TEXT = {
    "vocabulary_size": 49408,
    "context_length": 16,
    "hidden_dim": 64,
    "num_layers": 2,
    "num_heads": 2,
    "output_dim": 64,
}

PRESETS = {
    "RN50": {"image": _resnet(224, (3, 4, 6, 3), 64, 1024), "text": _text(512, 8, 1024)},
    "RN101": {"image": _resnet(224, (3, 4, 23, 3), 64, 512), "text": _text(512, 8, 512)},
    "RN50x4": {"image": _resnet(288, (4, 6, 10, 6), 80, 640), "text": _text(640, 10, 640)},
    "RN50x16": {
        "image": _resnet(384, (6, 8, 18, 8), 96, 768),
        "text": _text(768, 12, 768),
    },
    "RN50x64": {
        "image": _resnet(448, (3, 15, 36, 10), 128, 1024),
        "text": _text(1024, 16, 1024),
    },
    "ViT-B/32": {"image": _vit(224, 32, 768, 12, 512), "text": _text(512, 8, 512)},
    "ViT-B/16": {"image": _vit(224, 16, 768, 12, 512), "text": _text(512, 8, 512)},
    "ViT-L/14": {"image": _vit(224, 14, 1024, 24, 768), "text": _text(768, 12, 768)},
    "ViT-L/14@336": {
        "image": _vit(336, 14, 1024, 24, 768),
        "text": _text(768, 12, 768),
    },
    # Not a paper model: ConvNeXt-T (keras.applications' ConvNeXtTiny) with
    # ViT-B/32's text tower and embedding width.
    "convnext-tiny": {
        "image": ("ConvNeXtEncoder", {"image_size": 224, "depths": (3, 3, 9, 3),
                                      "projection_dims": (96, 192, 384, 768),
                                      "output_dim": 512}),
        "text": _text(512, 8, 512),
    },
    "siglip-base-patch16-224": _siglip(224, 16, 768, 12, 12, 3072),
    "siglip-so400m-patch14-384": _siglip(384, 14, 1152, 27, 16, 4304),
    "tiny-vit": {
        "image": ("VisionTransformer", _TINY_VIT),
        "text": ("TextTransformer", _TINY_TEXT),
    },
    "tiny-resnet": {
        "image": (
            "ModifiedResNet",
            {
                "image_size": 64,
                "blocks_per_stage": (1, 1, 1, 1),
                "width": 8,
                "num_heads": 4,
                "output_dim": 64,
            },
        ),
        "text": ("TextTransformer", _TINY_TEXT),
    },
    "tiny-convnext": {
        "image": ("ConvNeXtEncoder", {"image_size": 32, "depths": (1, 1, 1, 1),
                                      "projection_dims": (16, 32, 64, 128),
                                      "output_dim": 64}),
        "text": ("TextTransformer", _TINY_TEXT),
    },
    "tiny-siglip": {
        "image": ("SigLIPVisionTransformer",
                  {"image_size": 32, "patch_size": 8, "hidden_dim": 64, "num_layers": 2,
                   "num_heads": 2, "mlp_dim": 128}),
        "text": ("SigLIPTextTransformer",
                 {"vocabulary_size": 49408, "context_length": 16, "hidden_dim": 64,
                  "num_layers": 2, "num_heads": 2, "mlp_dim": 128}),
        "objective": "sigmoid",
        "preprocessing": SIGLIP_PIXELS,
    },
    "tiny-bow": {
        "image": ("VisionTransformer", _TINY_VIT),
        "text": (
            "BagOfWordsEncoder",
            {
                "vocabulary_size": 49408,
                "context_length": 16,
                "hidden_dim": 64,
                "output_dim": 64,
            },
        ),
    },
}


def resolve(preset):
    """What a preset string names: the one reading of it, for every command.

    Returns `("architecture", data)` for a name in `PRESETS`, or
    `("saved", path)` for a path ending in `.keras` or an existing
    directory (a `train` output_dir or a `convert` preset directory; what
    is wrong with it, if anything, `models/loading.read_model` says).
    Anything else is an error listing the names.

    Example:
    >>> resolve("tiny-vit")[0], resolve("runs/clip")
    ('architecture', ('saved', 'runs/clip'))
    """
    if preset in PRESETS:
        return "architecture", PRESETS[preset]
    path = os.fspath(preset)
    if path.endswith(".keras") or files.isdir(path):
        return "saved", path
    raise ValueError(
        f"Unknown CLIP preset {preset!r}. Available presets: {', '.join(PRESETS)}; or "
        "the path of a .keras file or of a directory with model.keras."
    )


def model_name(preset):
    """A Keras-safe model name for a preset (`"ViT-B/32"` → `"clip_vit_b_32"`)."""
    return "clip_" + "".join(c if c.isalnum() else "_" for c in preset.lower())


def build_towers(preset, dtype=None):
    """`(image_encoder, text_encoder)` of a preset, with fresh random weights."""
    return build_towers_from(PRESETS[preset], dtype)


def build_towers_from(architecture, dtype=None):
    """Towers from preset data: `{"image": (class_name, args), "text": ...}`."""
    towers = []
    for part in TOWER_PARTS:
        class_name, arguments = architecture[part]
        if class_name not in TOWERS:
            raise ValueError(
                f"Unknown {part} tower {class_name!r}; known: {', '.join(TOWERS)}."
            )
        towers.append(
            TOWERS[class_name](**arguments, dtype=dtype, name=f"{part}_encoder")
        )
    return tuple(towers)


def model_arguments(architecture, image_encoder, text_encoder):
    """`CLIPModel`'s `objective` and `preprocessing` for towers built from preset data."""
    record = Preprocessing(image_encoder.image_size, text_encoder.context_length,
                           pad_id=text_encoder.padding_id,
                           **architecture.get("preprocessing", {}))
    return {"objective": architecture.get("objective", "contrastive"), "preprocessing": record}


def architecture_with(architecture, image_size=None, context_length=None,
                      vocabulary_size=None, end_of_text_id=None):
    """A copy of preset data at another image size, context length or vocabulary.

    None keeps a value. A new vocabulary also sets the text transformer's
    end-of-text id (the tokenizer's), which its pooling reads.

    Example:
    >>> architecture_with(PRESETS["tiny-vit"], image_size=64)["image"][1]["image_size"]
    64
    """
    (image_class, image_args), (text_class, text_args) = (
        architecture["image"], architecture["text"])
    image_args, text_args = dict(image_args), dict(text_args)
    if image_size is not None:
        image_args["image_size"] = image_size
    if context_length is not None:
        text_args["context_length"] = context_length
    if vocabulary_size is not None and vocabulary_size != text_args["vocabulary_size"]:
        text_args["vocabulary_size"] = vocabulary_size
        end_of_text_argument = TOWERS[text_class].end_of_text_argument
        if end_of_text_argument is not None:
            text_args[end_of_text_argument] = end_of_text_id
    others = {key: value for key, value in architecture.items() if key not in TOWER_PARTS}
    return {"image": [image_class, image_args], "text": [text_class, text_args], **others}
