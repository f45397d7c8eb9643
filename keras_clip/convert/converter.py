"""`convert_checkpoint`: another implementation's CLIP → a keras_clip model."""

import json
import os
import tempfile

import numpy as np

from keras_clip import files
from keras_clip.convert import architectures, weight_maps
from keras_clip.convert.checkpoint_files import CheckpointError, read_checkpoint
from keras_clip.models import clip_presets
from keras_clip.models.clip_model import CLIPModel
from keras_clip.models.loading import MODEL_FILE
from keras_clip.models.resolution import with_image_size
from keras_clip.preprocessing import Preprocessing

SOURCES = ("openai", "open_clip", "hf")
HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


class ConversionError(ValueError):
    """A checkpoint that does not fit the architecture it was said to have."""


def load_weights(model, weights, entries):
    """Fills `model` from `weights` along a weight map, or says what is wrong.

    Every model weight must get a value of its exact shape and every source
    tensor must be used (bar `weight_maps.is_ignored` buffers); otherwise one
    error names each missing, unexpected and mis-shaped weight.
    """
    problems, values, used = [], [], set()
    for variable, names, transform in entries:
        missing = [name for name in names if name not in weights]
        if missing:
            problems += [f"missing weight {name!r} (for {variable.path})" for name in missing]
            continue
        used.update(names)
        value = transform(*(weights[name] for name in names))
        if tuple(value.shape) != tuple(variable.shape):
            shapes = " + ".join(str(tuple(weights[name].shape)) for name in names)
            problems.append(
                f"weight {names[0]!r} has shape {shapes}, which gives "
                f"{tuple(value.shape)}; {variable.path} needs {tuple(variable.shape)}"
            )
            continue
        values.append((variable, value))
    unexpected = sorted(
        name for name in weights if name not in used and not weight_maps.is_ignored(name)
    )
    problems += [f"unexpected weight {name!r}" for name in unexpected]
    filled = {id(variable) for variable, _ in values}
    if not problems:
        problems += [
            f"{variable.path} has no source weight"
            for variable in model.weights
            if id(variable) not in filled
        ]
    if problems:
        raise ConversionError(
            f"The checkpoint does not match the {model.name} architecture "
            f"({len(problems)} problem(s)):\n  " + "\n  ".join(problems)
        )
    for variable, value in values:
        variable.assign(np.asarray(value, dtype=variable.dtype))


def convert_checkpoint(
    source,
    path,
    preset=None,
    config=None,
    activation=None,
    image_size=None,
    vocabulary_path=None,
):
    """Builds a keras_clip model holding a checkpoint's weights.

    Args:
        source: `"openai"`, `"open_clip"` or `"hf"`.
        path: the checkpoint file (`.pt`, `.bin`, `.safetensors`), or for
            `"hf"` a directory with `config.json`, `model.safetensors` (or
            `pytorch_model.bin`), and `vocab.json` and `merges.txt` (a
            `CLIPModel`) or `spiece.model` (a `SiglipModel`, whose
            `preprocessor_config.json` is read too).
        preset: a keras_clip preset naming the architecture (`"ViT-B/32"`,
            `"RN50"`, …) of an OpenAI or OpenCLIP state dict.
        config: for `"open_clip"` instead of `preset`: an OpenCLIP model
            config (dict, or the path of its JSON file).
        activation: `"quick_gelu"` or `"gelu"`, with `preset`. OpenAI's
            weights use QuickGELU (the default for `"openai"`); OpenCLIP's
            models use GELU unless their name ends in `-quickgelu`.
        image_size: build the image tower at this size instead, with
            interpolated positional embeddings (e.g. 336 for a 224 model).
        vocabulary_path: OpenAI's `bpe_simple_vocab_16e6.txt.gz`, if no
            installed package ships it.

    Returns:
        `(model, tokenizer, preprocessing)`; `preprocessing` is a dict of the
        source's image size, context length, mean and std, also the
        model's `preprocessing` record (what its pipelines then use).
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}.")
    if source == "hf":
        model, tokenizer, preprocessing = _from_hf_directory(path)
    else:
        architecture, preprocessing = _openai_architecture(source, preset, config, activation)
        weights = read_checkpoint(path)  # before building: a bad file fails fast
        model = _build(architecture, preset)
        load_weights(model, weights, weight_maps.openai_entries(model))
        from keras_clip.data.clip_tokenizer import CLIPTokenizer

        tokenizer = CLIPTokenizer.from_openai(
            vocabulary_path, context_length=model.context_length
        )
    if image_size is not None and image_size != model.image_size:
        model = with_image_size(model, image_size)
        preprocessing["image_size"] = image_size
    model.preprocessing = Preprocessing.from_dict(preprocessing)
    return model, tokenizer, model.preprocessing.to_dict()


def _openai_architecture(source, preset, config, activation):
    if (preset is None) == (config is None):
        raise ValueError(
            f"Name the architecture of a {source} state dict with exactly one of "
            f"preset (e.g. 'ViT-B/32') or config (an OpenCLIP model config)."
        )
    if config is not None:
        if source != "open_clip":
            raise ValueError("config= describes OpenCLIP models; use preset= for openai.")
        if isinstance(config, str):
            with files.open(config) as file:
                config = json.load(file)
        return architectures.open_clip_architecture(config)
    if activation is None:
        if source == "open_clip":
            raise ValueError(
                "State the activation of an OpenCLIP checkpoint converted by preset: "
                "'gelu' for models like 'ViT-B-32', 'quick_gelu' for '-quickgelu' "
                "ones (or pass the OpenCLIP config instead)."
            )
        activation = "quick_gelu"
    architecture = architectures.preset_architecture(preset, activation)
    image_size = architecture["image"][1]["image_size"]
    context_length = architecture["text"][1]["context_length"]
    return architecture, architectures.default_preprocessing(image_size, context_length)


def _from_hf_directory(directory):
    from keras_clip.data.clip_tokenizer import CLIPTokenizer

    if not files.isdir(directory):
        raise CheckpointError(f"{directory} is not a Hugging Face model directory.")
    config = _read_json(files.join(directory, "config.json"))
    model_type = config.get("model_type", "clip")
    if model_type == "siglip":
        return _from_hf_siglip_directory(directory, config)
    if model_type != "clip":
        raise ConversionError(
            f"{files.join(directory, 'config.json')} describes a {model_type!r} model; "
            "this converter reads Hugging Face CLIPModel ('clip') and SiglipModel "
            "('siglip') directories.")
    vocabulary = _read_json(files.join(directory, "vocab.json"))
    end_of_text_id = vocabulary.get("<|endoftext|>", architectures.END_OF_TEXT_ID)
    try:
        architecture = architectures.hf_architecture(config, end_of_text_id)
    except (KeyError, TypeError, AttributeError) as error:
        raise ConversionError(
            f"{files.join(directory, 'config.json')} is not a CLIP config this "
            f"converter reads ({type(error).__name__}: {error}).") from None
    _, preprocessor = _hf_image_processor(directory)
    preprocessing = architectures.hf_preprocessing(preprocessor, architecture)
    weights = read_checkpoint(_hf_weight_file(directory))
    model = _build(architecture, None)
    load_weights(model, weights, weight_maps.hf_entries(model))
    tokenizer = CLIPTokenizer.from_hf(
        files.join(directory, "vocab.json"),
        files.join(directory, "merges.txt"),
        context_length=model.context_length,
    )
    return model, tokenizer, preprocessing


def _from_hf_siglip_directory(directory, config):
    """A Hugging Face `SiglipModel` directory: towers, weights, SentencePiece tokenizer."""
    from keras_clip.data.siglip_tokenizer import MODEL_FILE, SigLIPTokenizer

    config_path = files.join(directory, "config.json")
    try:
        architecture = architectures.hf_siglip_architecture(config)
    except (KeyError, TypeError, AttributeError, IndexError) as error:
        raise ConversionError(f"{config_path} is not a SigLIP config this converter reads "
                              f"({type(error).__name__}: {error}).") from None
    except ValueError as error:
        raise ConversionError(f"{config_path}: {error}") from None
    tokenizer_path = files.join(directory, MODEL_FILE)
    if not files.isfile(tokenizer_path):
        raise CheckpointError(f"{directory} has no {MODEL_FILE} (SigLIP's SentencePiece "
                              "tokenizer).")
    preprocessor_path, preprocessor = _hf_image_processor(directory)
    try:
        preprocessing = architectures.hf_siglip_preprocessing(preprocessor, architecture)
    except (ValueError, TypeError, AttributeError) as error:
        raise ConversionError(f"{preprocessor_path}: {error}") from None
    _check_siglip_tokenizer_config(directory)
    text = architecture["text"][1]
    try:
        tokenizer = SigLIPTokenizer(tokenizer_path, context_length=text["context_length"])
    except ValueError as error:
        raise CheckpointError(f"{tokenizer_path}: {error}") from None
    if tokenizer.vocabulary_size() != text["vocabulary_size"]:
        raise ConversionError(
            f"{tokenizer_path} has {tokenizer.vocabulary_size()} pieces but config.json's "
            f"text tower embeds {text['vocabulary_size']} ids.")
    if tokenizer.pad_token_id != text["padding_id"]:
        raise ConversionError(
            f"{tokenizer_path} pads with id {tokenizer.pad_token_id} (</s>) but config.json "
            f"says pad_token_id={text['padding_id']}.")
    weights = read_checkpoint(_hf_weight_file(directory))
    model = _build(architecture, None, name="siglip_converted")
    load_weights(model, weights, weight_maps.hf_siglip_entries(model))
    return model, tokenizer, preprocessing


def _hf_image_processor(directory):
    """`(path, config)` of a directory's image processor: `preprocessor_config.json`, or
    transformers 5's `processor_config.json` (its `image_processor`); `(None, None)`."""
    path = files.join(directory, "preprocessor_config.json")
    if files.exists(path):
        return path, _read_json(path)
    path = files.join(directory, "processor_config.json")
    if files.exists(path):
        nested = _read_json(path).get("image_processor")
        if isinstance(nested, dict):
            return path, nested
    return None, None


def _check_siglip_tokenizer_config(directory):
    """Refuses tokenizer settings SigLIPTokenizer does not follow (it lowercases)."""
    path = files.join(directory, "tokenizer_config.json")
    if not files.exists(path):
        return
    config = _read_json(path)
    if config.get("do_lower_case", True) is not True:
        raise ConversionError(f"{path} sets do_lower_case={config['do_lower_case']!r}; "
                              "keras_clip's SigLIPTokenizer lowercases, as SigLIP's does.")
    kind = config.get("tokenizer_class", "SiglipTokenizer")
    if kind not in ("SiglipTokenizer", "SiglipTokenizerFast"):
        raise ConversionError(f"{path} names tokenizer_class={kind!r}; keras_clip reads "
                              "SigLIP's SentencePiece tokenizer (SiglipTokenizer).")


def _hf_weight_file(directory):
    weight_files = [files.join(directory, name) for name in HF_WEIGHT_FILES]
    weight_files = [name for name in weight_files if files.exists(name)]
    if not weight_files:
        raise CheckpointError(f"{directory} has none of {', '.join(HF_WEIGHT_FILES)}.")
    return weight_files[0]


def _build(architecture, preset, name="clip_converted"):
    image_encoder, text_encoder = clip_presets.build_towers_from(architecture)
    name = clip_presets.model_name(preset) if preset else name
    arguments = clip_presets.model_arguments(architecture, image_encoder, text_encoder)
    return CLIPModel(image_encoder, text_encoder, name=name, **arguments)


def _read_json(path):
    if not files.exists(path):
        raise CheckpointError(f"Missing {path}.")
    with files.open(path) as file:
        try:
            value = json.load(file)
        except ValueError as error:  # not JSON, or not UTF-8
            raise CheckpointError(f"{path} is not valid JSON ({error}).") from None
    if not isinstance(value, dict):
        raise CheckpointError(f"{path} holds a JSON {type(value).__name__}, not an object.")
    return value


def save_converted(model, tokenizer, preprocessing, destination):
    """Writes a `.keras` file, or a preset directory for `from_preset`.

    A directory gets `model.keras`, the tokenizer's `vocab.json` and
    `merges.txt`, and `preprocessing.json` (the model's record, which its
    config holds too; `preprocessing` is kept for callers of keras_clip
    0.1 and unused). Everything is written under a
    temporary name beside the destination and moved there when complete,
    so a conversion that fails part-way leaves nothing half-written. An
    existing destination is refused, never overwritten.
    """
    destination = destination.rstrip("/") or destination
    if files.isdir(destination) and not files.listdir(destination):
        files.rmtree(destination)  # an empty folder made for it
    if files.exists(destination):
        raise FileExistsError(f"{destination!r} exists; not overwriting it (choose another "
                              "--out, or remove it first).")
    parent = files.dirname(files.absolute(destination))
    files.makedirs(parent)
    # Locally the scratch folder sits beside the destination (one rename);
    # a URL's is local, copied over once complete.
    scratch_parent = None if files.is_url(destination) else parent
    with tempfile.TemporaryDirectory(dir=scratch_parent, prefix=".converting-") as scratch:
        if destination.endswith(".keras"):
            partial = os.path.join(scratch, MODEL_FILE)
            model.save(partial)
        else:
            partial = os.path.join(scratch, "preset")
            os.makedirs(partial)
            model.save(os.path.join(partial, MODEL_FILE))
            tokenizer.save_vocabulary(partial)
            model.preprocessing.save(partial)
        if not files.is_url(destination):
            os.replace(partial, destination)
        elif os.path.isdir(partial):
            files.copy_tree(partial, destination)
        else:
            files.copy(partial, destination)
    return destination
