"""Tower arguments for a converted checkpoint, from a preset or a config file.

Nothing is guessed from tensor shapes: the architecture comes from a
keras_clip preset name (with the activation stated), an OpenCLIP model
config (`open_clip/model_configs/*.json`) or a Hugging Face `config.json`.
Options of those configs that keras_clip's towers do not implement are
refused by name rather than dropped.
"""

import copy
import inspect

from keras_clip.models import clip_presets
from keras_clip.models.clip_presets import default_preprocessing
from keras_clip.preprocessing import CLIP_MEAN, CLIP_STD

ACTIVATIONS = ("quick_gelu", "gelu")
# OpenCLIP options that change nothing at inference, or that keras_clip's
# towers match when they hold these values (OpenCLIP's defaults).
OPEN_CLIP_NEUTRAL = {
    "ls_init_value": None,
    "attentional_pool": False,
    "no_ln_pre": False,
    "pos_embed_type": "learnable",
    "final_ln_after_pool": False,
    "embed_cls": False,
    "pad_id": 0,
    "no_causal_mask": False,
    "proj_bias": False,
    "proj_type": "linear",
    "act_kwargs": None,
    "norm_kwargs": None,
    "block_type": None,
    "qk_norm": False,
    "scaled_cosine_attn": False,
    "scale_heads": False,
    "scale_attn_inner": False,
    "scale_attn": False,
    "scale_fc": False,
    "timm_model_name": None,
    "hf_model_name": None,
    "hf_tokenizer_name": None,
    "tokenizer_mode": None,
}
OPEN_CLIP_POOLING = {"vision_cfg": "tok", "text_cfg": "argmax"}
OPEN_CLIP_IGNORED = {
    "patch_dropout", "output_tokens", "timm_model_pretrained", "hf_model_pretrained",
    "tokenizer_kwargs", "eos_id", "attn_pooler_queries", "attn_pooler_heads",
    "timm_pool", "timm_proj", "timm_proj_bias", "timm_drop", "timm_drop_path",
    "hf_proj_type", "hf_pooler_type",
}
# Hugging Face CLIPConfig's documented defaults, for keys a config.json omits.
HF_TEXT_DEFAULTS = {
    "vocab_size": 49408, "hidden_size": 512, "intermediate_size": 2048,
    "num_hidden_layers": 12, "num_attention_heads": 8, "max_position_embeddings": 77,
    "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "eos_token_id": 49407,
}
HF_VISION_DEFAULTS = {
    "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
    "num_attention_heads": 12, "image_size": 224, "patch_size": 32,
    "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5,
}
END_OF_TEXT_ID = 49407


def preset_architecture(preset, activation):
    """A keras_clip preset's towers, with the transformers' activation set."""
    kind, architecture = clip_presets.resolve(preset)
    if kind != "architecture":
        raise ValueError(
            f"--preset names an architecture, one of {', '.join(clip_presets.PRESETS)}; "
            f"{preset!r} is a saved model."
        )
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"activation must be one of {ACTIVATIONS} (OpenAI's weights and "
            f"OpenCLIP's '-quickgelu' models: quick_gelu), got {activation!r}."
        )
    architecture = copy.deepcopy(architecture)
    for part in ("image", "text"):
        class_name, arguments = architecture[part]
        if "activation" in inspect.signature(clip_presets.TOWERS[class_name]).parameters:
            arguments["activation"] = activation
    return architecture


def _check_open_clip_options(section, values):
    for key, value in values.items():
        if key in OPEN_CLIP_IGNORED or key in _OPEN_CLIP_USED[section]:
            continue
        if key == "pool_type" and value == OPEN_CLIP_POOLING[section]:
            continue
        if key in OPEN_CLIP_NEUTRAL and value == OPEN_CLIP_NEUTRAL[key]:
            continue
        raise ValueError(
            f"OpenCLIP option {section}.{key}={value!r} is not implemented by "
            f"keras_clip's towers; this checkpoint cannot be converted exactly."
        )


_OPEN_CLIP_USED = {
    "vision_cfg": {"image_size", "layers", "width", "patch_size", "head_width", "mlp_ratio"},
    "text_cfg": {"context_length", "vocab_size", "width", "heads", "layers", "mlp_ratio"},
}


def open_clip_architecture(config):
    """`(architecture, preprocessing)` from an OpenCLIP model config dict."""
    for key in config:
        if key not in ("embed_dim", "vision_cfg", "text_cfg", "quick_gelu",
                       "preprocess_cfg", "init_logit_scale", "cast_dtype"):
            raise ValueError(f"OpenCLIP option {key!r} is not supported by keras_clip.")
    vision, text = config["vision_cfg"], config["text_cfg"]
    _check_open_clip_options("vision_cfg", vision)
    _check_open_clip_options("text_cfg", text)
    activation = "quick_gelu" if config.get("quick_gelu", False) else "gelu"
    embed_dim = config["embed_dim"]
    image_size = vision.get("image_size", 224)
    head_width = vision.get("head_width", 64)
    if isinstance(vision["layers"], (list, tuple)):
        image = ("ModifiedResNet", {
            "image_size": image_size,
            "blocks_per_stage": tuple(vision["layers"]),
            "width": vision.get("width", 64),
            "num_heads": vision.get("width", 64) * 32 // head_width,
            "output_dim": embed_dim,
        })
    else:
        width = vision.get("width", 768)
        image = ("VisionTransformer", {
            "image_size": image_size,
            "patch_size": vision["patch_size"],
            "hidden_dim": width,
            "num_layers": vision["layers"],
            "num_heads": width // head_width,
            "output_dim": embed_dim,
            "mlp_ratio": _integer_ratio(vision.get("mlp_ratio", 4.0), "vision_cfg.mlp_ratio"),
            "activation": activation,
        })
    context_length = text.get("context_length", 77)
    text_tower = ("TextTransformer", {
        "vocabulary_size": text.get("vocab_size", 49408),
        "context_length": context_length,
        "hidden_dim": text.get("width", 512),
        "num_layers": text.get("layers", 12),
        "num_heads": text.get("heads", 8),
        "output_dim": embed_dim,
        "mlp_ratio": _integer_ratio(text.get("mlp_ratio", 4.0), "text_cfg.mlp_ratio"),
        "activation": activation,
    })
    preprocessing = default_preprocessing(image_size, context_length)
    for key in ("mean", "std"):
        if key in config.get("preprocess_cfg", {}):
            preprocessing[key] = list(config["preprocess_cfg"][key])
    return {"image": image, "text": text_tower}, preprocessing


def hf_architecture(config, end_of_text_id=END_OF_TEXT_ID):
    """`architecture` from a Hugging Face `CLIPModel` config.json dict.

    Args:
        end_of_text_id: the vocabulary's `<|endoftext|>` id, used when the
            config carries the legacy `eos_token_id` 2 (with which Hugging
            Face pools at the largest id, i.e. at `<|endoftext|>`).
    """
    text = {**HF_TEXT_DEFAULTS, **(config.get("text_config") or {})}
    vision = {**HF_VISION_DEFAULTS, **(config.get("vision_config") or {})}
    embed_dim = config.get("projection_dim", 512)
    for section, values in (("text_config", text), ("vision_config", vision)):
        if values["hidden_act"] not in ACTIVATIONS:
            raise ValueError(
                f"{section}.hidden_act={values['hidden_act']!r} is not one of {ACTIVATIONS}."
            )
        if abs(values["layer_norm_eps"] - 1e-5) > 1e-12:
            raise ValueError(
                f"{section}.layer_norm_eps={values['layer_norm_eps']} differs from "
                f"the 1e-5 keras_clip's towers use."
            )
    eos = text["eos_token_id"]
    image = ("VisionTransformer", {
        "image_size": vision["image_size"],
        "patch_size": vision["patch_size"],
        "hidden_dim": vision["hidden_size"],
        "num_layers": vision["num_hidden_layers"],
        "num_heads": vision["num_attention_heads"],
        "output_dim": embed_dim,
        "mlp_ratio": _integer_ratio(
            vision["intermediate_size"] / vision["hidden_size"], "vision_config.intermediate_size"
        ),
        "activation": vision["hidden_act"],
    })
    text_tower = ("TextTransformer", {
        "vocabulary_size": text["vocab_size"],
        "context_length": text["max_position_embeddings"],
        "hidden_dim": text["hidden_size"],
        "num_layers": text["num_hidden_layers"],
        "num_heads": text["num_attention_heads"],
        "output_dim": embed_dim,
        "mlp_ratio": _integer_ratio(
            text["intermediate_size"] / text["hidden_size"], "text_config.intermediate_size"
        ),
        "activation": text["hidden_act"],
        "end_of_text_id": end_of_text_id if eos == 2 else eos,
    })
    return {"image": image, "text": text_tower}


def hf_preprocessing(preprocessor_config, architecture):
    """Preprocessing constants from a Hugging Face `preprocessor_config.json`."""
    image_size = architecture["image"][1]["image_size"]
    preprocessing = default_preprocessing(
        image_size, architecture["text"][1]["context_length"]
    )
    if preprocessor_config:
        preprocessing["mean"] = list(preprocessor_config.get("image_mean", CLIP_MEAN))
        preprocessing["std"] = list(preprocessor_config.get("image_std", CLIP_STD))
    return preprocessing


def _integer_ratio(value, name):
    if float(value) != int(value):
        raise ValueError(f"{name} gives an MLP ratio of {value}; keras_clip needs an integer.")
    return int(value)


# === Hugging Face SiglipModel ===

#: Hugging Face's names of the tanh-approximated GELU SigLIP uses.
HF_TANH_GELU = ("gelu_pytorch_tanh", "gelu_new", "gelu_fast")
SIGLIP_TEXT_DEFAULTS = {"vocab_size": 32000, "hidden_size": 768, "intermediate_size": 3072,
                        "num_hidden_layers": 12, "num_attention_heads": 12,
                        "max_position_embeddings": 64, "hidden_act": "gelu_pytorch_tanh",
                        "layer_norm_eps": 1e-6, "pad_token_id": 1, "projection_size": None}
SIGLIP_VISION_DEFAULTS = {"hidden_size": 768, "intermediate_size": 3072,
                          "num_hidden_layers": 12, "num_attention_heads": 12,
                          "num_channels": 3, "image_size": 224, "patch_size": 16,
                          "hidden_act": "gelu_pytorch_tanh", "layer_norm_eps": 1e-6,
                          "vision_use_head": True}


def hf_siglip_architecture(config):
    """`architecture` (towers, objective, pixels) from a `SiglipModel` config.json dict."""
    text = {**SIGLIP_TEXT_DEFAULTS, **(config.get("text_config") or {})}
    vision = {**SIGLIP_VISION_DEFAULTS, **(config.get("vision_config") or {})}
    activations = {}
    for section, values in (("text_config", text), ("vision_config", vision)):
        if values["hidden_act"] in HF_TANH_GELU:
            activations[section] = "gelu_tanh"
        elif values["hidden_act"] == "gelu":
            activations[section] = "gelu"
        else:
            raise ValueError(f"{section}.hidden_act={values['hidden_act']!r} is not a GELU "
                             "keras_clip's SigLIP towers have.")
        if abs(values["layer_norm_eps"] - 1e-6) > 1e-12:
            raise ValueError(f"{section}.layer_norm_eps={values['layer_norm_eps']} differs "
                             "from the 1e-6 keras_clip's SigLIP towers use.")
    for key, wanted in (("vision_use_head", True), ("num_channels", 3)):
        if vision[key] != wanted:
            raise ValueError(f"vision_config.{key}={vision[key]!r}: keras_clip's SigLIP "
                             f"vision tower has {key}={wanted!r}.")
    for key in ("image_size", "patch_size"):
        value = vision[key]
        if isinstance(value, (list, tuple)) and len(value) == 2 and value[0] == value[1]:
            vision[key] = value = value[0]  # a square, as a pair
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"vision_config.{key}={value!r}: keras_clip reads square "
                             "images and patches (one integer).")
    if text["pad_token_id"] is None:  # the tokenizer's </s>, as SigLIP's own config says
        text["pad_token_id"] = SIGLIP_TEXT_DEFAULTS["pad_token_id"]
    image = ("SigLIPVisionTransformer", {
        "image_size": vision["image_size"],
        "patch_size": vision["patch_size"],
        "hidden_dim": vision["hidden_size"],
        "num_layers": vision["num_hidden_layers"],
        "num_heads": vision["num_attention_heads"],
        "mlp_dim": vision["intermediate_size"],
        "activation": activations["vision_config"],
    })
    text_tower = ("SigLIPTextTransformer", {
        "vocabulary_size": text["vocab_size"],
        "context_length": text["max_position_embeddings"],
        "hidden_dim": text["hidden_size"],
        "num_layers": text["num_hidden_layers"],
        "num_heads": text["num_attention_heads"],
        "mlp_dim": text["intermediate_size"],
        "output_dim": text["projection_size"] or text["hidden_size"],
        "activation": activations["text_config"],
        "padding_id": text["pad_token_id"],
    })
    return {"image": image, "text": text_tower, "objective": "sigmoid"}


def hf_siglip_preprocessing(preprocessor_config, architecture):
    """`Preprocessing` fields from a SigLIP image processor's config (None: SigLIP's).

    SigLIP resizes the whole image to the square (no crop) and maps pixels
    to [-1, 1]. Raises `ValueError` on steps keras_clip's pipelines do not
    implement (another rescale, no resize to the tower's size).
    """
    import warnings

    image_size = architecture["image"][1]["image_size"]
    record = {"image_size": image_size,
              "context_length": architecture["text"][1]["context_length"],
              "mean": [0.5] * 3, "std": [0.5] * 3, "resize": "squash",
              "pad_id": architecture["text"][1]["padding_id"]}
    config = preprocessor_config or {}
    if config.get("do_normalize", True):
        record["mean"] = _three("image_mean", config.get("image_mean", record["mean"]))
        record["std"] = _three("image_std", config.get("image_std", record["std"]))
    else:
        record["mean"], record["std"] = [0.0] * 3, [1.0] * 3
    rescale = config.get("rescale_factor", 1 / 255) if config.get("do_rescale", True) else 1
    if not isinstance(rescale, (int, float)) or abs(rescale - 1 / 255) > 1e-9:
        raise ValueError(f"the image processor rescales pixels by {rescale!r}; keras_clip's "
                         "pipelines take them to [0, 1] (1/255).")
    size = config.get("size", {"height": image_size, "width": image_size})
    if isinstance(size, int):
        size = {"height": size, "width": size}
    if not isinstance(size, dict) or (size.get("height"), size.get("width")) != (
            image_size, image_size) or not config.get("do_resize", True):
        raise ValueError(f"the image processor resizes to {size!r} (do_resize="
                         f"{config.get('do_resize', True)}); keras_clip evaluates SigLIPs "
                         f"by resizing the whole image to the tower's {image_size}×"
                         f"{image_size}.")
    resample = config.get("resample", 3)
    if resample != 3:  # PIL's BICUBIC, what keras_clip's evaluation resize is
        warnings.warn(f"the image processor resizes with PIL resample={resample}; "
                      "keras_clip evaluates with bicubic (3), so images differ slightly "
                      "from the source's.", stacklevel=2)
    return record


def _three(name, value):
    """Three per-channel numbers from one or three (as transformers accepts them)."""
    values = [value] * 3 if isinstance(value, (int, float)) else list(value)
    if len(values) != 3 or not all(isinstance(v, (int, float)) for v in values):
        raise ValueError(f"the image processor's {name}={value!r} is not 1 or 3 numbers.")
    return [float(v) for v in values]
