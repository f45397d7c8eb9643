"""The training configuration: one flat, documented, JSON-friendly record.

`keras-clip train --config cfg.json --set key=value ...` reads one of these;
`load_config` does the same for Python callers. Every problem a config can
have is reported before anything is built: unknown keys, wrong types, bad
values, and data patterns that match no file.
"""

import dataclasses
import json
import math
import textwrap
import typing

from keras_clip import files
from keras_clip.data import tokenizer_spec

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
DISTRIBUTIONS = ("auto", "none", "mirrored", "multi_worker", "tpu", "data_parallel")
INPUT_SHARDINGS = ("files", "examples")


# What `recipe` sets when a key is left unset. "paper": Radford et al.'s
# optimiser for 32k batches. "small": a few thousand captioned images and a
# tiny model, as `keras-clip demo` trains (benchmarks/small_recipe.py).
# Both warm up for a tenth of the run, at most the paper's 2,000 steps.
RECIPES = {
    "paper": {"learning_rate": 5e-4, "weight_decay": 0.2},
    "small": {"learning_rate": 2e-3, "weight_decay": 0.1},
}
MAX_WARMUP_STEPS = 2000
#: An architecture's keys: its towers (required) and what presets may add.
ARCHITECTURE_KEYS = {"image", "text", "objective", "preprocessing"}
DEFAULT_PRESET = "tiny-vit"
MAX_SIZE = 4096  # image side and context length: the paper's largest is 448 / 77
# config.json also records every key as the run used it, under this key;
# `--config` reads the keys as given, so derived values follow new settings.
USED = "used"


def _key(default, help):
    """A config key with its one-line help (`keras-clip train --help` lists them)."""
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass
class TrainConfig:
    """What `keras_clip.training.train` needs: one flat, JSON-friendly record.

    Each key's help is its field's `metadata["help"]`; `describe_keys()`
    lists them (as `keras-clip train --help` does). Keys left None take
    their value from `recipe`, the preset or the run's length;
    `train` writes the values it used to `output_dir/config.json`.

    Example:
    >>> config = TrainConfig(train_data="data/train-*.tfrecord", steps=300, recipe="small")
    >>> config.resolved(total_steps=300).learning_rate  # the small recipe's
    0.002
    """

    # Model
    preset: typing.Optional[str] = _key(
        None, f"a preset name (see CLIPModel.presets; default {DEFAULT_PRESET}), or a "
        ".keras file or model directory to fine-tune")
    architecture: typing.Optional[dict] = _key(
        None, 'instead of a preset: {"image": [class, {args}], "text": [class, {args}]}, '
        'optionally with "objective" and "preprocessing" (a preset\'s keys)')
    image_size: typing.Optional[int] = _key(
        None, "image side in pixels (default: the preset's); a fine-tuned ViT's "
        "positions are interpolated")
    context_length: typing.Optional[int] = _key(
        None, "tokens per caption (default: the preset's)")
    objective: typing.Optional[str] = _key(
        None, "'contrastive' (CLIP's softmax) or 'sigmoid' (SigLIP's pairwise loss); "
        "default: a new model's is its preset's (contrastive unless it says), a fine-tuned "
        "model keeps its own")
    remat: bool = _key(False, "recompute transformer blocks in the backward pass "
                       "(less memory)")
    patch_dropout: float = _key(
        0.0, "fraction of its patches each training image drops in a ViT image tower "
        "(FLIP: 0.5 halves the tower's work); evaluation and export see every patch")
    # Data
    train_data: str = _key("", "glob of training TFRecord shards (required)")
    validation_data: typing.Optional[str] = _key(None, "glob of validation shards")
    tokenizer: typing.Optional[str] = _key(
        "openai", f"{tokenizer_spec.HELP}; null: the ids stored in the records")
    batch_size: int = _key(64, "global batch, split evenly across replicas")
    accumulation_steps: int = _key(
        1, "split each replica's batch into this many micro-batches that take one exact "
        "step, still contrasting the whole batch (memory of a micro-batch, one more "
        "forward pass)")
    steps: typing.Optional[int] = _key(None, "optimizer steps (set this or epochs)")
    epochs: typing.Optional[int] = _key(
        None, "passes over train_data, counted from the shards' sidecars")
    shuffle_buffer: int = _key(2048, "examples in the shuffle buffer")
    seed: int = _key(0, "seed of shuffling, augmentation and initial weights")
    deterministic: bool = _key(True, "input order independent of thread timing "
                               "(exact resumption needs it)")
    input_sharding: str = _key(
        "files", "with several input workers (hosts): 'files', each reads its own "
        "shards; 'examples', each reads all and keeps its share (a one-device run's "
        "order, k times the reading)")
    # Optimizer: AdamW, decoupled decay on weights only; warm-up then cosine.
    recipe: str = _key("paper", "defaults of unset optimizer keys: 'paper' "
                       "(lr 5e-4, decay 0.2) or 'small' (lr 2e-3, decay 0.1)")
    learning_rate: typing.Optional[float] = _key(None, "peak learning rate "
                                                 "(default: the recipe's)")
    warmup_steps: typing.Optional[int] = _key(
        None, f"linear warm-up steps (default: a tenth of the run, at most "
        f"{MAX_WARMUP_STEPS})")
    weight_decay: typing.Optional[float] = _key(
        None, "decoupled weight decay on kernels (default: the recipe's)")
    beta_1: float = _key(0.9, "Adam beta_1")
    beta_2: typing.Optional[float] = _key(None, "Adam beta_2 (default: 0.98 ViT, "
                                          "0.999 ResNet)")
    epsilon: typing.Optional[float] = _key(None, "Adam epsilon (default: 1e-6 ViT, "
                                           "1e-8 ResNet)")
    gradient_clip_norm: typing.Optional[float] = _key(None, "clip gradients to this "
                                                      "global norm (null: off)")
    tower_learning_rate_scale: float = _key(
        1.0, "learning rate factor of the towers, not projections or temperature "
        "(fine-tuning: < 1)")
    # Fine-tuning
    lock_image_tower: bool = _key(False, "freeze the image tower (LiT)")
    image_unlocked_blocks: int = _key(0, "with a locked image tower: train its last N "
                                      "blocks")
    lock_text_tower: bool = _key(False, "freeze the text tower")
    text_unlocked_blocks: int = _key(0, "with a locked text tower: train its last N "
                                     "blocks")
    wise_ft_alpha: typing.Optional[float] = _key(
        None, "also save wise_ft.keras, (1 - alpha) start + alpha fine-tuned (WiSE-FT)")
    # Run
    precision: str = _key("float32", "float32, mixed_bfloat16 or mixed_float16")
    distribution: str = _key("auto", "auto, none, mirrored, multi_worker, tpu or "
                             "data_parallel")
    coordinator_address: typing.Optional[str] = _key(
        None, "JAX on several hosts: process 0's host:port (default: "
        "$KERAS_DISTRIBUTION_JOB_ADDRESSES; a TPU pod slice needs none)")
    num_processes: typing.Optional[int] = _key(
        None, "JAX on several hosts: how many processes (default: "
        "$KERAS_DISTRIBUTION_NUM_PROCESSES)")
    process_id: typing.Optional[int] = _key(
        None, "JAX on several hosts: this process's index, 0 writes the files (default: "
        "$KERAS_DISTRIBUTION_PROCESS_ID)")
    output_dir: str = _key("runs/clip", "where model.keras, its tokenizer, "
                           "config.json, checkpoints/ and logs/ go")
    checkpoint_every: int = _key(500, "steps between checkpoints (and one at the end)")
    keep_checkpoints: int = _key(2, "recent checkpoints kept")
    resume: bool = _key(True, "continue from the latest checkpoint in output_dir")
    log_every: int = _key(50, "steps between TensorBoard points and progress lines "
                          "when not on a terminal")
    verbose: int = _key(1, "0: quiet, 1: progress bar on a terminal, 2: a line per "
                        "log_every steps")

    def __post_init__(self):
        problems = list(_type_problems(self)) or list(_value_problems(self))
        if problems:
            raise ValueError("Invalid training config: " + "; ".join(problems) + ".")

    @classmethod
    def from_dict(cls, values):
        """A config from its keys; a run's record of what it used is skipped."""
        values = {key: value for key, value in values.items() if key != USED}
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"Invalid training config: unknown key(s) {', '.join(map(repr, unknown))}. "
                f"Known keys: {', '.join(sorted(known))}."
            )
        return cls(**values)

    def to_dict(self):
        return dataclasses.asdict(self)

    def resolved(self, total_steps):
        """This config with the recipe's and the run length's defaults filled in.

        Fine-tuning a saved model with the default tokenizer uses the one
        saved with it (what `train` and `convert` write beside model.keras).
        The model's sizes and Adam's defaults are filled by `train`, which
        knows the model.
        """
        values = {key: value for key, value in RECIPES[self.recipe].items()
                  if getattr(self, key) is None}
        if self.warmup_steps is None:
            values["warmup_steps"] = min(MAX_WARMUP_STEPS, total_steps // 10)
        if self.preset is None and self.architecture is None:
            values["preset"] = DEFAULT_PRESET
        saved = self.preset and tokenizer_spec.saved_tokenizer_near(self.preset)
        if self.tokenizer == tokenizer_spec.OPENAI and saved and files.exists(self.preset):
            values["tokenizer"] = saved
        return dataclasses.replace(self, **values)

    def record(self, used):
        """What `train` writes to config.json: these keys, and `used` (resolved)."""
        return {**self.to_dict(), USED: used.to_dict()}

    def check_data(self):
        """Raises if a data pattern matches no file, or validation is under a batch.

        Called before anything is built. Batches are whole, so a validation
        set smaller than one batch would validate nothing.
        """
        from keras_clip.data.dataset import expected_records, list_shards

        for key in ("train_data", "validation_data"):
            pattern = getattr(self, key)
            if not pattern:
                continue
            try:
                list_shards(pattern)
            except FileNotFoundError as error:
                only = str(error).partition(" (only ")[2]  # what matched instead
                raise FileNotFoundError(
                    f"Invalid training config: {key}={pattern!r} matches no file"
                    + (f" (only {only}" if only else ".")) from None
        if self.validation_data:
            records = expected_records(list_shards(self.validation_data))
            if records is not None and records < self.batch_size:
                raise ValueError(
                    f"Invalid training config: validation_data holds {records} examples, "
                    f"fewer than one batch of {self.batch_size} (batches are whole): lower "
                    "batch_size or give more validation data.")


def load_config(path=None, overrides=()):
    """A `TrainConfig` from a JSON file (optional) and `key=value` overrides.

    Override values are parsed as JSON when they parse (`steps=100`,
    `remat=true`, `tokenizer=null`) and taken as strings otherwise
    (`train_data=/data/train-*.tfrecord`).
    """
    values = {}
    if path:
        with files.open(path) as file:
            try:
                values = json.load(file)
            except ValueError as error:  # JSONDecodeError, or bytes that are not UTF-8
                raise ValueError(
                    f"Invalid training config: {path} is not valid JSON ({error})."
                ) from None
        if not isinstance(values, dict):
            raise ValueError(f"Invalid training config: {path} must hold a JSON object.")
    for override in overrides:
        key, separator, text = override.partition("=")
        if not separator:
            raise ValueError(f"Invalid override {override!r}: expected key=value.")
        try:
            values[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            values[key.strip()] = text
    return TrainConfig.from_dict(values)


def _type_problems(config):
    hints = typing.get_type_hints(TrainConfig)
    for field in dataclasses.fields(config):
        value, hint = getattr(config, field.name), hints[field.name]
        optional = typing.get_origin(hint) is typing.Union
        expected = typing.get_args(hint)[0] if optional else hint
        if value is None and optional:
            continue
        ok = isinstance(value, expected) and not (
            expected is not bool and isinstance(value, bool)
        )
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            yield f"{field.name} must be {expected.__name__}, got {value!r}"


def _value_problems(config):
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if isinstance(value, float) and not math.isfinite(value):
            yield f"{field.name} must be a finite number, got {value}"
    if not config.train_data:
        yield "train_data (a glob of TFRecord shards) is required"
    if (config.steps is None) == (config.epochs is None):
        yield "set exactly one of steps and epochs"
    for key in ("batch_size", "accumulation_steps", "steps", "epochs", "checkpoint_every",
                "keep_checkpoints", "log_every", "shuffle_buffer"):
        value = getattr(config, key)
        if value is not None and value < 1:
            yield f"{key} must be at least 1, got {value}"
    for key in ("warmup_steps", "image_unlocked_blocks", "text_unlocked_blocks"):
        value = getattr(config, key)
        if value is not None and value < 0:
            yield f"{key} must be at least 0, got {value}"
    if config.accumulation_steps >= 1 and config.batch_size % config.accumulation_steps:
        yield (f"batch_size ({config.batch_size}) must be a multiple of accumulation_steps "
               f"({config.accumulation_steps}): each micro-batch is batch_size / "
               "accumulation_steps examples")
    if None not in (config.steps, config.warmup_steps) and config.warmup_steps >= config.steps:
        yield f"warmup_steps ({config.warmup_steps}) must be below steps ({config.steps})"
    if config.recipe not in RECIPES:
        yield f"recipe must be one of {', '.join(RECIPES)}, got {config.recipe!r}"
    if config.preset is not None and config.architecture is not None:
        yield "set preset or architecture, not both"
    for key, least in (("image_size", 1), ("context_length", 2)):
        value = getattr(config, key)
        if value is not None and not least <= value <= MAX_SIZE:
            yield f"{key} must be in [{least}, {MAX_SIZE}], got {value}"
    if config.objective is not None:
        from keras_clip.losses.objectives import OBJECTIVES

        if config.objective not in OBJECTIVES:
            yield (f"objective must be one of {', '.join(OBJECTIVES)}, "
                   f"got {config.objective!r}")
    if config.precision not in PRECISIONS:
        yield f"precision must be one of {', '.join(PRECISIONS)}, got {config.precision!r}"
    if config.num_processes is not None and config.num_processes < 1:
        yield f"num_processes must be at least 1, got {config.num_processes}"
    if config.process_id is not None and config.process_id < 0:
        yield f"process_id must be at least 0, got {config.process_id}"
    if config.input_sharding not in INPUT_SHARDINGS:
        yield (f"input_sharding must be one of {', '.join(INPUT_SHARDINGS)}, "
               f"got {config.input_sharding!r}")
    if config.distribution not in DISTRIBUTIONS:
        yield (f"distribution must be one of {', '.join(DISTRIBUTIONS)}, "
               f"got {config.distribution!r}")
    if not 0.0 <= config.patch_dropout < 1.0:
        yield f"patch_dropout must be in [0, 1), got {config.patch_dropout}"
    if config.wise_ft_alpha is not None and not 0.0 <= config.wise_ft_alpha <= 1.0:
        yield f"wise_ft_alpha must be in [0, 1], got {config.wise_ft_alpha}"
    if config.learning_rate is not None and config.learning_rate <= 0:
        yield f"learning_rate must be positive, got {config.learning_rate}"
    if config.tower_learning_rate_scale < 0:
        yield ("tower_learning_rate_scale must not be negative, got "
               f"{config.tower_learning_rate_scale}")
    if config.weight_decay is not None and config.weight_decay < 0:
        yield f"weight_decay must not be negative, got {config.weight_decay}"
    for key in ("beta_1", "beta_2"):
        value = getattr(config, key)
        if value is not None and not 0.0 <= value < 1.0:
            yield f"{key} must be in [0, 1), got {value}"
    for key in ("epsilon", "gradient_clip_norm"):
        value = getattr(config, key)
        if value is not None and value <= 0:
            yield f"{key} must be positive, got {value}"
    if config.verbose not in (0, 1, 2):
        yield f"verbose must be 0, 1 or 2, got {config.verbose}"
    if config.architecture is not None and (
            not {"image", "text"} <= set(config.architecture) <= ARCHITECTURE_KEYS):
        yield ("architecture must have the keys 'image' and 'text', and may have "
               "'objective' and 'preprocessing' (as a preset's data does), got "
               f"{sorted(config.architecture)}")


def describe_keys(width=79):
    """Every config key with its default and one line of help, for `--help`."""
    lines = []
    for field in dataclasses.fields(TrainConfig):
        head = f"  {field.name} = {json.dumps(field.default)}"
        lines.append(head)
        lines += textwrap.wrap(field.metadata["help"], width, initial_indent=" " * 6,
                               subsequent_indent=" " * 6, break_on_hyphens=False)
    return "\n".join(lines)
