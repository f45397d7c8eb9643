"""`train(config)`: strategy, data, model, optimizer, then `model.fit`."""

import dataclasses
import gc
import json
import math
import tempfile

import keras

from keras_clip import files
from keras_clip.models import clip_presets
from keras_clip.models.clip_model import CLIPModel
from keras_clip.models.loading import read_model
from keras_clip.training import fine_tuning, recipe
from keras_clip.training.checkpointer import Checkpointer, latest_checkpoint
from keras_clip.training.config import USED, TrainConfig
from keras_clip.training.distribution import Processes, select_distribution
from keras_clip.training.progress import StepProgress
from keras_clip.training.training_state_logger import TrainingStateLogger

CONFIG_FILE = "config.json"
# config.json's record of how many input workers split the data.
INPUT_WORKERS = "input_workers"


@dataclasses.dataclass
class TrainResult:
    model: CLIPModel
    history: dict
    steps: int  # optimizer steps done in all, resumed runs included
    model_path: str
    wise_ft_path: str = None
    distribution: str = "single"  # the engine used (see `select_distribution`)
    replicas: int = 1
    steps_this_run: int = 0  # 0: output_dir held the finished run already


def train(config, callbacks=()):
    """Trains a CLIP model as `config` says; resumes if a checkpoint exists.

    Args:
        config: a `TrainConfig`, or a dict of its fields.
        callbacks: extra Keras callbacks, run after ours.

    Returns:
        A `TrainResult`; the model is also saved as `output_dir/model.keras`.

    Example:
    >>> result = train({"preset": "tiny-vit", "train_data": "data/train-*.tfrecord",
    ...                 "batch_size": 8, "steps": 2, "output_dir": "runs/tiny", "verbose": 0})
    >>> result.steps, result.model_path
    (2, 'runs/tiny/model.keras')
    """
    if isinstance(config, dict):
        config = TrainConfig.from_dict(config)
    config.check_data()
    # First: joining a multi-process JAX run must precede any JAX call.
    distribution = select_distribution(config.distribution, Processes(
        config.coordinator_address, config.num_processes, config.process_id))
    recipe.check_precision_runs_here(config.precision)
    distribution.check_batch_size(config.batch_size, config.accumulation_steps)
    if config.patch_dropout and distribution.kind in TF_STRATEGIES and (
            distribution.num_replicas > 1):
        # Their replicas share one seed state, which each updates as it draws.
        raise ValueError(
            f"Invalid training config: patch_dropout is not supported under the "
            f"{distribution.kind} strategy's {distribution.num_replicas} replicas (their "
            "random draws would race); train it on one device, with JAX (data_parallel) "
            "or with torch.distributed.")
    total_steps = _total_steps(config)
    given, config = config, config.resolved(total_steps)
    resumed = None
    if config.resume:
        resumed = latest_checkpoint(files.join(config.output_dir, "checkpoints"))
        if resumed:
            _check_continues(config, distribution.input_workers)
    start_step = resumed[0] if resumed else 0
    # Every worker writes the same files (saving is collective); only the
    # chief's land in output_dir.
    write_dir = config.output_dir if distribution.is_chief else tempfile.mkdtemp()
    keras.utils.set_random_seed(config.seed)
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(config.precision)
    dataset = None
    try:
        with distribution.scope():
            model, start, tokenizer = _build_model(config, resumed, total_steps)
            config = dataclasses.replace(  # config.json records what was used
                config, image_size=model.image_size, context_length=model.context_length,
                objective=model.objective.name, **recipe.adam_defaults(config, model))
            record = given.record(config)
            record[USED][INPUT_WORKERS] = distribution.input_workers
            _write_config(record, write_dir)
            if tokenizer is not None:  # output_dir becomes a preset directory
                _save_tokenizer(tokenizer, model, write_dir)
            dataset = _training_data(config, model, tokenizer, start_step, distribution)
            callbacks = [*_callbacks(config, write_dir, start_step, total_steps), *callbacks]
            _report_batch(config, distribution)
            history = {}
            if start_step < total_steps:
                steps_per_epoch = min(config.checkpoint_every, total_steps)
                history = model.fit(
                    dataset,
                    epochs=math.ceil(total_steps / steps_per_epoch),
                    initial_epoch=start_step // steps_per_epoch,
                    steps_per_epoch=steps_per_epoch,
                    validation_data=_validation_data(config, model, tokenizer, distribution),
                    callbacks=callbacks,
                    shuffle=False,  # make_dataset shuffles (seeded, resumable)
                    verbose=0,  # StepProgress counts steps, on terminals and in logs
                ).history
            _report_skips(dataset, config.verbose)
        result = _finish(config, write_dir, model, start, history, total_steps, distribution)
        result.steps_this_run = max(total_steps - start_step, 0)
    finally:
        keras.config.set_dtype_policy(previous_policy)
        if write_dir != config.output_dir:
            files.rmtree(write_dir)
        # The training pipeline repeats forever, and its prefetching threads
        # live as long as its iterator, which a reference cycle through
        # `fit` keeps until a collection: collected here, the run leaves
        # nothing reading its shards (which a later step may rewrite).
        dataset = None
        gc.collect()
    return result


def _callbacks(config, write_dir, start_step, total_steps):
    """Ours, in order: state logging, progress, checkpoints, TensorBoard."""
    return [
        # Before StepProgress, which shows what it adds.
        TrainingStateLogger(config.log_every, start_step, total_steps, config.batch_size),
        StepProgress(total_steps, start_step, config.verbose, config.log_every),
        Checkpointer(files.join(write_dir, "checkpoints"), config.checkpoint_every,
                     total_steps, start_step, config.keep_checkpoints),
        keras.callbacks.TensorBoard(files.join(write_dir, "logs"),
                                    update_freq=config.log_every),
    ]


def _report_batch(config, distribution):
    """What one step's batch is made of, when accumulation splits it."""
    if config.verbose and config.accumulation_steps > 1:
        micro = config.batch_size // (distribution.num_replicas * config.accumulation_steps)
        print(f"batch {config.batch_size} per step: {distribution.num_replicas} replica(s) × "
              f"{config.accumulation_steps} accumulation steps × micro-batches of {micro}")


def _total_steps(config):
    if config.steps is not None:
        return config.steps
    from keras_clip.data.dataset import expected_records, list_shards

    records = expected_records(list_shards(config.train_data))
    if records is None:
        raise ValueError(
            "Invalid training config: epochs needs the shards' .json sidecar counts "
            f"(written by make-tfrecords), which {config.train_data!r} lacks; set steps."
        )
    total = records // config.batch_size * config.epochs
    if config.warmup_steps is not None and total <= config.warmup_steps:
        raise ValueError(
            f"Invalid training config: {config.epochs} epoch(s) of {records} examples are "
            f"{total} steps of {config.batch_size}, not more than warmup_steps="
            f"{config.warmup_steps}."
        )
    return total


def _build_model(config, resumed, total_steps):
    """The model to train (compiled), the one it started from (WiSE-FT), the tokenizer."""
    if resumed:
        # Weights, optimizer state and the step counter, as saved.
        model = read_model(resumed[1])
        if config.objective not in (None, model.objective.name):  # a run without a record
            _refuse_to_continue(config, "objective", model.objective.name, config.objective)
        tokenizer = _tokenizer(config, model.context_length)
    else:
        model, tokenizer = _new_model(config)
    if config.remat:
        for tower in rematerialize(model):
            if config.verbose:
                print(f"remat: {tower} declares no blocks to recompute; it keeps its "
                      "activations.")
    start = None
    if config.wise_ft_alpha is not None:
        if not _is_saved_model(config.preset):
            raise ValueError(
                "Invalid training config: wise_ft_alpha needs preset to be a "
                ".keras file or model directory to start from."
            )
        start = _new_model(config)[0]
    _check_vocabulary(config, model, tokenizer)
    # How a batch is split changes no update, so a resumed run may change it.
    model.accumulation_steps = config.accumulation_steps
    try:  # a training option: the saved model records it, the config sets it
        model.image_encoder.patch_dropout = config.patch_dropout
    except ValueError as error:
        raise ValueError(f"Invalid training config: {error}") from None
    if not resumed:
        if config.lock_image_tower:
            fine_tuning.lock_tower(model.image_encoder, config.image_unlocked_blocks)
        if config.lock_text_tower:
            fine_tuning.lock_tower(model.text_encoder, config.text_unlocked_blocks)
        model.compile(optimizer=recipe.make_optimizer(config, model, total_steps))
    return model, start, tokenizer


def _is_saved_model(preset):
    return preset is not None and clip_presets.resolve(preset)[0] == "saved"


def _new_model(config):
    """A fresh or loaded model at the config's sizes, and its tokenizer."""
    if _is_saved_model(config.preset):
        model = read_model(config.preset, compile=False)  # weights only: a new run
        if config.image_size not in (None, model.image_size):
            from keras_clip.models.resolution import with_image_size

            model = with_image_size(model, config.image_size)
        if config.context_length not in (None, model.context_length):
            raise ValueError(
                f"Invalid training config: context_length={config.context_length}, but "
                f"{config.preset} reads {model.context_length} tokens (fixed by its "
                "positional embeddings).")
        if config.objective not in (None, model.objective.name):
            if config.wise_ft_alpha is not None:
                raise ValueError(
                    f"Invalid training config: wise_ft_alpha blends two models of one "
                    f"objective, but {config.preset} was trained with "
                    f"objective={model.objective.name!r}, not {config.objective!r}.")
            # The towers, trained on from a new objective's starting weights.
            model = CLIPModel(model.image_encoder, model.text_encoder,
                              objective=config.objective, preprocessing=model.preprocessing,
                              name=model.name)
        return model, _tokenizer(config, model.context_length)
    if config.architecture is not None:
        architecture = config.architecture
    else:
        architecture = clip_presets.resolve(config.preset)[1]
    context_length = config.context_length or architecture["text"][1]["context_length"]
    tokenizer = _tokenizer(config, context_length)
    vocabulary = {}
    if tokenizer is not None:
        vocabulary = dict(vocabulary_size=tokenizer.vocabulary_size(),
                          end_of_text_id=tokenizer.end_token_id)
    architecture = clip_presets.architecture_with(
        architecture, config.image_size, config.context_length, **vocabulary)
    image, text = clip_presets.build_towers_from(architecture, config.precision)
    name = clip_presets.model_name(config.preset) if config.preset else "clip"
    arguments = clip_presets.model_arguments(architecture, image, text)
    if config.objective is not None:
        arguments["objective"] = config.objective
    return CLIPModel(image, text, name=name, **arguments), tokenizer


def _check_vocabulary(config, model, tokenizer):
    """A tokenizer whose ids the text tower cannot embed is refused up front."""
    if tokenizer is None:
        return
    from keras_clip.data.tokenizer_spec import check_fits

    try:
        check_fits(tokenizer, model, config.tokenizer)
    except ValueError as error:
        raise ValueError(f"Invalid training config: {error}") from None


def rematerialize(model):
    """Makes every tower recompute its `remat_blocks` in the backward pass.

    Keras 3.15 has no public way to rematerialise a layer already built
    (`keras.RematScope` applies to layers created inside it), so each block
    gets the mode a full-mode scope would have given it at construction.
    Returns the names of the towers that declare no such blocks.
    """
    mode = keras.RematScope(mode="full")
    without = []
    for tower in (model.image_encoder, model.text_encoder):
        for block in tower.remat_blocks:
            block._remat_mode = mode
        if not tower.remat_blocks:
            without.append(f"{type(tower).__name__} ({tower.name})")
    return without


def _tokenizer(config, context_length):
    if config.tokenizer is None:
        return None
    from keras_clip.data.tokenizer_spec import load_tokenizer

    return load_tokenizer(config.tokenizer, context_length)


def _save_tokenizer(tokenizer, model, directory):
    """vocab.json, merges.txt and preprocessing.json, as `convert` writes them.

    With model.keras beside them, `output_dir` loads like a converted preset
    (`load_model`, `load_tokenizer`, `--model output_dir`).
    """
    tokenizer.save_vocabulary(directory)
    model.preprocessing.save(directory)


def _training_data(config, model, tokenizer, start_step, distribution):
    from keras_clip.data import dataset

    options = dict(
        # uint8 pixels, normalised by the model inside the step (and so per
        # micro-batch when accumulating): a quarter of float32's bytes in
        # every copy of the batch between the files and the towers.
        image_dtype="uint8",
        preprocessing=model.preprocessing, batch_size=config.batch_size, training=True,
        tokenizer=tokenizer, shuffle_buffer=config.shuffle_buffer,
        seed=config.seed, repeat=True, skip_examples=start_step * config.batch_size,
        deterministic=config.deterministic, input_sharding=config.input_sharding,
        trim_token_ids=model.text_encoder.accepts_trimmed_token_ids,
    )
    if distribution.kind in ("mirrored", "multi_worker", "tpu"):
        return dataset.make_distributed_dataset(
            distribution.engine, config.train_data, **options
        )
    if distribution.input_worker:  # several processes (JAX, PyTorch): this one's part
        num_processes = distribution.input_worker[0]
        options.update(batch_size=config.batch_size // num_processes,
                       input_worker=distribution.input_worker)
        if keras.backend.backend() == "jax":  # one global array: one id width
            options["trim_token_ids"] = False
    return dataset.make_dataset(config.train_data, **options)


def _validation_data(config, model, tokenizer, distribution):
    if not config.validation_data:
        return None
    from keras_clip.data.dataset import make_dataset

    if not distribution.input_worker:
        # Several TensorFlow workers split it by example: a validation set may
        # have fewer shards than there are workers.
        return make_dataset(config.validation_data, preprocessing=model.preprocessing,
                            image_dtype="uint8",
                            batch_size=config.batch_size, training=False, tokenizer=tokenizer,
                            input_sharding="examples",
                            trim_token_ids=model.text_encoder.accepts_trimmed_token_ids)
    # Several processes: each reads the (small) validation set whole and
    # keeps its slice of every global batch, so all run the same number of
    # steps (their collectives must meet) and the ids have one width.
    num_processes, index = distribution.input_worker
    part = config.batch_size // num_processes
    batches = make_dataset(config.validation_data, preprocessing=model.preprocessing,
                           image_dtype="uint8",
                           batch_size=config.batch_size, training=False, tokenizer=tokenizer,
                           trim_token_ids=False)
    return batches.map(lambda batch: {key: value[index * part:(index + 1) * part]
                                      for key, value in batch.items()})


def _report_skips(dataset, verbose):
    """Says what the training data lost, if anything (a pipeline per worker: none)."""
    stats = getattr(dataset, "stats", None)
    if verbose and stats is not None and (stats.skipped_so_far() or stats.damage.regions):
        print(f"Training data: {stats.summary(exhausted=False)}.")


# Keys a checkpoint can continue under whatever their value (accumulation
# splits a batch into micro-batches: the same update, but for BatchNorm's
# micro-batch statistics).
TF_STRATEGIES = ("mirrored", "multi_worker", "tpu")
RUN_ONLY_KEYS = {"verbose", "log_every", "output_dir", "resume", "keep_checkpoints",
                 "checkpoint_every", "distribution", "validation_data", "train_data",
                 "coordinator_address", "num_processes", "process_id", "accumulation_steps"}


def _check_continues(config, input_workers):
    """Refuses to resume a checkpoint under a config that changes the run.

    The optimizer's schedule, the model's shape and the data order are in
    the checkpoint; a new `steps` would train the extra steps at learning
    rate 0, a new `image_size` would be ignored. With file-sharded input,
    the number of input workers is part of the data order too.
    """
    path = files.join(config.output_dir, CONFIG_FILE)
    if not files.exists(path):
        return  # no record to compare with (a run of an older keras_clip)
    try:
        with files.open(path) as file:
            used = json.load(file)[USED]
    except (ValueError, KeyError, TypeError, OSError):
        return
    for key, value in config.to_dict().items():
        if key in RUN_ONLY_KEYS or value is None or key not in used:
            continue
        if used[key] != value:
            _refuse_to_continue(config, key, used[key], value)
    before = used.get(INPUT_WORKERS, 1)
    if config.input_sharding == "files" and before != input_workers:
        raise ValueError(
            f"Invalid training config: {config.output_dir} holds a run whose data {before} "
            f"input worker(s) read, each its own shards (input_sharding='files'); "
            f"{input_workers} would read another stream, so its checkpoint cannot continue "
            f"exactly. Resume it with {before}. {_NEW_RUN.format(config.output_dir)}")


def _refuse_to_continue(config, key, was, now):
    raise ValueError(
        f"Invalid training config: {config.output_dir} holds a run with "
        f"{key}={json.dumps(was)}, not {json.dumps(now)}, and its checkpoint "
        f"can only continue that run. {_NEW_RUN.format(config.output_dir)}")


_NEW_RUN = ("To train on from it, start a new run from it (--set preset={0} --set "
            "output_dir=NEW_DIR); to start over, --set resume=false.")


def _write_config(record, directory):
    files.makedirs(directory)
    # Atomic: the other processes of a run read it while the chief writes.
    files.write_atomically(files.join(directory, CONFIG_FILE), json.dumps(record, indent=2))


def _finish(config, directory, model, start, history, total_steps, distribution):
    model_path = files.join(directory, "model.keras")
    files.clear_for_writing(model_path)
    model.save(model_path)
    wise_ft_path = None
    if start is not None:
        wise_ft_path = files.join(directory, "wise_ft.keras")
        files.clear_for_writing(wise_ft_path)
        fine_tuning.wise_ft(start, model, config.wise_ft_alpha).save(wise_ft_path)
    return TrainResult(model, history, total_steps, model_path, wise_ft_path,
                       distribution.kind, distribution.num_replicas)
