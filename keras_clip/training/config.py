"""The training configuration: one flat, documented, JSON-friendly record.

`keras-clip train --config cfg.json --set key=value ...` reads one of these;
`load_config` does the same for Python callers. Every problem a config can
have is reported before anything is built: unknown keys, wrong types, bad
values, and data patterns that match no file.
"""

import dataclasses
import json
import math
import typing

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
DISTRIBUTIONS = ("auto", "none", "mirrored", "multi_worker", "tpu", "data_parallel")


@dataclasses.dataclass
class TrainConfig:
    """What `keras_clip.training.train` needs; defaults follow the paper.

    Model:
        preset: a name in `CLIPModel.presets`, or a `.keras` file to start
            from (fine-tuning; its weights are the WiSE-FT starting point).
        architecture: a custom model instead of a preset, as preset data:
            `{"image": [class_name, {args}], "text": [class_name, {args}]}`.
        remat: recompute each transformer block's activations in the
            backward pass (gradient checkpointing) to save memory; a
            ModifiedResNet's batch-normed bottlenecks are not recomputed.
    Data (keras_clip TFRecords, see `make_dataset`):
        train_data: glob of training shards (required).
        validation_data: optional glob of evaluation shards.
        tokenizer: `"openai"`, the path of a BPE merges file, or None to use
            the token ids stored in the records.
        batch_size: the global batch, split evenly across replicas.
        steps: optimizer steps; or `epochs` passes over the training data
            (counted from the shards' sidecar files). Exactly one of them.
        shuffle_buffer, seed: the shuffle and augmentation; `deterministic`
            keeps the input order independent of thread timing, which exact
            resumption needs.
    Optimizer (AdamW, decoupled decay on weights only; warm-up then cosine):
        learning_rate, warmup_steps, weight_decay, beta_1; beta_2 and epsilon
        default by image tower (ViT 0.98/1e-6, ResNet 0.999/1e-8);
        gradient_clip_norm (global norm, None: off); tower_learning_rate_scale
        multiplies the learning rate of everything but the projections and
        the temperature (fine-tuning: < 1).
    Fine-tuning:
        lock_image_tower / lock_text_tower freeze a tower (LiT locks the
        image tower); image_unlocked_blocks / text_unlocked_blocks then
        unfreeze its last N residual blocks and everything after them.
        wise_ft_alpha: also save the weight-space ensemble
        `(1 - alpha) · start + alpha · fine-tuned` (WiSE-FT).
    Run:
        precision: "float32", "mixed_bfloat16" or "mixed_float16" (with
            dynamic loss scaling).
        distribution: "auto" picks TPU, several workers (TF_CONFIG), several
            GPUs, or JAX data parallelism over all devices; or name one.
        output_dir: checkpoints/, logs/ (TensorBoard) and model.keras.
        checkpoint_every: steps between checkpoints (and one at the end);
            Keras' progress bar counts these intervals as its "epochs".
        keep_checkpoints: how many recent checkpoints to keep.
        resume: continue from the latest checkpoint in output_dir.
        log_every: steps between TensorBoard points.
        verbose: Keras' progress output (0, 1 or 2).
    """

    preset: str = "tiny-vit"
    architecture: typing.Optional[dict] = None
    remat: bool = False
    train_data: str = ""
    validation_data: typing.Optional[str] = None
    tokenizer: typing.Optional[str] = "openai"
    batch_size: int = 64
    steps: typing.Optional[int] = None
    epochs: typing.Optional[int] = None
    shuffle_buffer: int = 2048
    seed: int = 0
    deterministic: bool = True
    learning_rate: float = 5e-4
    warmup_steps: int = 2000
    weight_decay: float = 0.2
    beta_1: float = 0.9
    beta_2: typing.Optional[float] = None
    epsilon: typing.Optional[float] = None
    gradient_clip_norm: typing.Optional[float] = None
    tower_learning_rate_scale: float = 1.0
    lock_image_tower: bool = False
    image_unlocked_blocks: int = 0
    lock_text_tower: bool = False
    text_unlocked_blocks: int = 0
    wise_ft_alpha: typing.Optional[float] = None
    precision: str = "float32"
    distribution: str = "auto"
    output_dir: str = "runs/clip"
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    resume: bool = True
    log_every: int = 50
    verbose: int = 1

    def __post_init__(self):
        problems = list(_type_problems(self)) or list(_value_problems(self))
        if problems:
            raise ValueError("Invalid training config: " + "; ".join(problems) + ".")

    @classmethod
    def from_dict(cls, values):
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

    def check_data(self):
        """Raises if a data pattern matches no file (before anything is built)."""
        from keras_clip.data.dataset import list_shards

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


def load_config(path=None, overrides=()):
    """A `TrainConfig` from a JSON file (optional) and `key=value` overrides.

    Override values are parsed as JSON when they parse (`steps=100`,
    `remat=true`, `tokenizer=null`) and taken as strings otherwise
    (`train_data=/data/train-*.tfrecord`).
    """
    values = {}
    if path:
        with open(path, encoding="utf-8") as file:
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
    for key in ("batch_size", "steps", "epochs", "checkpoint_every", "keep_checkpoints",
                "log_every", "shuffle_buffer"):
        value = getattr(config, key)
        if value is not None and value < 1:
            yield f"{key} must be at least 1, got {value}"
    for key in ("warmup_steps", "image_unlocked_blocks", "text_unlocked_blocks"):
        if getattr(config, key) < 0:
            yield f"{key} must be at least 0, got {getattr(config, key)}"
    if config.steps is not None and config.warmup_steps >= config.steps:
        yield f"warmup_steps ({config.warmup_steps}) must be below steps ({config.steps})"
    if config.precision not in PRECISIONS:
        yield f"precision must be one of {', '.join(PRECISIONS)}, got {config.precision!r}"
    if config.distribution not in DISTRIBUTIONS:
        yield (f"distribution must be one of {', '.join(DISTRIBUTIONS)}, "
               f"got {config.distribution!r}")
    if config.wise_ft_alpha is not None and not 0.0 <= config.wise_ft_alpha <= 1.0:
        yield f"wise_ft_alpha must be in [0, 1], got {config.wise_ft_alpha}"
    if config.learning_rate <= 0 or config.tower_learning_rate_scale < 0:
        yield "learning_rate must be positive and tower_learning_rate_scale not negative"
    if config.weight_decay < 0:
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
    if config.architecture is not None and set(config.architecture) != {"image", "text"}:
        yield "architecture must have exactly the keys 'image' and 'text'"
