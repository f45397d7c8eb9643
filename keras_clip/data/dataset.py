"""`make_dataset`: TFRecords → batches of `{"images", "token_ids"}` for `fit`.

The pipeline is a chain of named stages, each testable on its own:
`record_stream` (files → shuffled records of every pass), `check_first_records`
(`dataset_checks`: the schema, at once), `decode_examples` (records → images and captions or
ids, bad ones skipped and counted), `batch_examples` (batches, tokenized and
trimmed), and `check_delivers` (a pass that delivers nothing raises instead
of looping forever).
"""

import json
import random
import warnings

import tensorflow as tf

from keras_clip.data import image_ops, input_workers, record_reader, tfrecord_schema
from keras_clip.data.dataset_checks import check_first_records, first_line
from keras_clip.data.dataset_stats import DatasetStats, name_files
from keras_clip.data.host_tensorflow import keep_tensorflow_on_the_host
from keras_clip.preprocessing import RESIZE_MODES

keep_tensorflow_on_the_host()  # before TensorFlow's first op

#: Normalised inputs, or (uint8) pixels that `CLIPModel` normalises itself.
IMAGE_DTYPES = ("float32", "bfloat16", "float16", "uint8")
# Batches' id widths are rounded up to a multiple of this (few XLA shapes).
TRIM_MULTIPLE = 16
# Records decoded eagerly to find the first good one (see `check_delivers`).
EAGER_PROBE = 16


def list_shards(file_pattern):
    """The sorted files matching a glob (or globs), or a clear error when none do.

    Directories and `.json` sidecars are left out; any filesystem TensorFlow
    knows (`gs://…`) works.
    """
    patterns = [file_pattern] if isinstance(file_pattern, str) else list(file_pattern)
    matches = sorted({f for pattern in patterns for f in tf.io.gfile.glob(pattern)})
    files = [f for f in matches
             if not f.endswith(tfrecord_schema.SIDECAR_SUFFIX) and not tf.io.gfile.isdir(f)]
    if not files:
        found = f" (only {name_files(matches)}, no file)" if matches else ""
        raise FileNotFoundError(f"No TFRecord files match {file_pattern!r}{found}.")
    return files


def expected_records(files):
    """Sum of the sidecar record counts, or None if any shard lacks one.

    A sidecar that is not `{"records": N}` counts as missing, with a warning.
    """
    total = 0
    for path in files:
        sidecar = path + tfrecord_schema.SIDECAR_SUFFIX
        if not tf.io.gfile.exists(sidecar):
            return None
        try:
            with tf.io.gfile.GFile(sidecar) as file:
                records = json.load(file)["records"]
            if not isinstance(records, int) or isinstance(records, bool) or records < 0:
                raise TypeError
        except (ValueError, KeyError, TypeError) as error:
            warnings.warn(f"Ignoring {sidecar}: not a keras_clip sidecar ({{\"records\": N}}; "
                          f"{type(error).__name__}).", stacklevel=2)
            return None
        total += records
    return total


def make_dataset(file_pattern, *, batch_size, training, image_size=None, tokenizer=None,
                 shuffle_buffer=2048, seed=None, image_dtype="float32",
                 drop_remainder=True, repeat=False, skip_examples=0,
                 deterministic=None, input_worker=None, input_sharding="files", stats=None,
                 trim_token_ids=True, context_length=None, max_pixels=None,
                 preprocessing=None):
    """A `tf.data` pipeline of CLIP batches from keras_clip TFRecords.

    Files are read interleaved, shuffled when `training`, decoded and
    preprocessed (training: random resized crop 90–100%; evaluation: resize
    and centre crop), tokenized (or stored `token_ids` used), batched (a
    static batch size), trimmed to the longest caption and prefetched.
    Records that cannot be read or decoded are skipped, never fatal, and
    counted in `stats`; a damaged record inside a shard loses only itself
    (`record_reader`). Two things fail at once, before any batch: records
    that are not keras_clip examples, or hold no `token_ids` when no
    `tokenizer` is given (checked on the first record), and a pass over the
    files that delivers no example at all (which would otherwise loop
    forever with `repeat`): both raise `ValueError` naming the files and counts.

    With several input workers (hosts: MultiWorkerMirroredStrategy, found
    from the current strategy, or `input_worker`), `input_sharding` says
    how they split the data (`input_workers.py`):

    - `"files"` (default): worker `i` of `k` reads shards `i, i + k, …` of
      the sorted list, a `1/k` share of the bytes, with its own seeded
      stream; over a pass every record is delivered once across workers.
      Fewer shards than workers is an error. Same-sized shards (as
      make-tfrecords writes) give every worker the same share.
    - `"examples"`: every worker reads the same seeded stream and keeps
      every `k`-th example, before decoding: the workers' batches make up
      exactly the global batch one worker would see, so training matches a
      single-device run, at `k` times the reading.

    Augmentation and caption choice draw from stateless random ops seeded
    by `(seed, position in the stream)`, so with `deterministic=True` the
    stream is a pure function of `seed`, and `skip_examples=k` resumes it
    exactly where an uninterrupted run would be after `k` examples (records
    are skipped before decoding, so resuming costs no image work; a damaged
    record among the skipped ones shifts the stream by one).

    Args:
        file_pattern: glob (or list of globs) of `.tfrecord` shards.
        batch_size: int. Batch size (global, under a distribution strategy).
        training: bool. Shuffle, augment and pick a random caption per image.
        image_size: int. Side of the square output images (default: the
            preprocessing record's).
        tokenizer: a `CLIPTokenizer`; None uses the records' `token_ids`.
        shuffle_buffer: int. Examples in the shuffle buffer when training.
        seed: optional int for the shuffles and augmentation (None: random).
        image_dtype: `"float32"` or `"bfloat16"` (normalised inputs), or
            `"uint8"`: the resized pixels, a quarter of float32's bytes, which
            `CLIPModel` normalises inside its step with its preprocessing
            record (the trainer's choice; one batch of 32,768 32-pixel
            images is 100 MB instead of 400).
        drop_remainder: bool. Drop the last partial batch (static shapes,
            needed on TPUs and for even replica splits).
        repeat: bool. Loop over the data forever, reshuffling every pass.
        skip_examples: int. Examples of the stream to skip (resuming).
        deterministic: bool. Keep the order independent of thread timing
            (default: only when not `training`, which is a little faster).
        input_worker: optional `(num_workers, worker_index)`; by default
            taken from the current `tf.distribute` strategy's cluster.
        input_sharding: `"files"` or `"examples"`: how several input
            workers split the data (above). `skip_examples` counts the
            global stream either way.
        stats: optional `DatasetStats` to fill; one is made otherwise and
            attached to the result as `dataset.stats`.
        trim_token_ids: bool. Cut each batch's id columns after its longest
            caption, rounded up to a multiple of 16 (`trim_to_longest`). A
            causal tower's outputs are the same (CLIP's reads the end-of-text
            token), at a fraction of the cost: captions are mostly far
            shorter than the context. A tower that reads every position
            (SigLIP's: `accepts_trimmed_token_ids` is False) pads the rows
            back itself, so trimming is harmless there but saves nothing;
            pass `model.text_encoder.accepts_trimmed_token_ids`, as the
            trainer does. The id width varies between batches (at most 5
            distinct widths for a context of 77, each compiled once by XLA);
            turn it off for one static shape.
        context_length: int. Width of stored `token_ids` rows delivered
            (the model's context length); rows stored at another width are
            padded, or cut keeping their end-of-text id last. Default: the
            first record's width.
        max_pixels: images whose header declares more pixels are skipped
            before decoding (default `image_ops.MAX_IMAGE_PIXELS`).
        preprocessing: the model's `Preprocessing` record (`model.preprocessing`):
            its mean and std normalise the images, and its image size and
            context length are the defaults of `image_size` and
            `context_length`. None: CLIP's constants, `image_size` required.

    Returns:
        A `tf.data.Dataset` of `{"images": (B, S, S, 3), "token_ids": (B, T)}`.
    """
    image_dtype = tf.as_dtype(image_dtype).name
    if image_dtype not in IMAGE_DTYPES:
        raise ValueError(f"image_dtype must be one of {', '.join(IMAGE_DTYPES)}, "
                         f"not {image_dtype}.")
    if preprocessing is not None:
        image_size = image_size or preprocessing.image_size
        context_length = context_length or preprocessing.context_length
    elif image_size is None:
        raise ValueError("make_dataset needs image_size or a preprocessing record.")
    files = list_shards(file_pattern)
    deterministic = (not training) if deterministic is None else deterministic
    seed = random.randrange(2**31) if seed is None else seed
    share = input_workers.worker_share(files, seed, skip_examples, input_worker,
                                       input_sharding, deterministic)
    files, seed, skip_examples, (num_workers, worker_index) = share
    single_pass = not repeat and not skip_examples
    stats = stats or DatasetStats(expected_records(files) if single_pass else None)
    if tf.executing_eagerly():
        context_length = check_first_records(files, tokenizer, context_length)
    decode = _example_decoder(image_size, training, tokenizer, seed, image_dtype,
                              context_length, max_pixels, preprocessing)
    if tf.executing_eagerly():
        check_delivers(files, decode, stats)
    records = record_stream(files, training=training, seed=seed, repeat=repeat,
                            deterministic=deterministic, shuffle_buffer=shuffle_buffer,
                            damage=stats.damage)
    records = records.enumerate().skip(skip_examples)
    stats.positions = (skip_examples + worker_index, num_workers)
    if num_workers > 1:
        records = records.shard(num_workers, worker_index)
    examples = decode_examples(records, decode, stats, deterministic)
    dataset = batch_examples(examples, batch_size, tokenizer, drop_remainder,
                             trim_token_ids, deterministic)
    dataset.stats = stats
    return dataset


def record_stream(files, *, training, seed, repeat, deterministic, shuffle_buffer, damage):
    """Files → their serialized records, pass after pass (one without `repeat`).

    Shuffled with stateless ops keyed by `(seed, pass)`: the order never
    depends on the global seed or on how many iterators were made before
    (Keras makes and drops one under a strategy).
    """
    offsets = record_reader.offsets_table()

    def one_pass(epoch):
        pass_seed = tf.stack([tf.constant(seed, tf.int64), epoch])
        paths = tf.constant(files)
        if training:
            paths = tf.random.experimental.stateless_shuffle(paths, pass_seed)
        records = tf.data.Dataset.from_tensor_slices(paths).interleave(
            lambda path: record_reader.read_shard(path, offsets, damage),
            cycle_length=min(len(files), 16),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=deterministic,
        )
        if training:
            # Blocks of `shuffle_buffer` records, each permuted in place.
            records = records.batch(shuffle_buffer).enumerate().map(
                lambda block, batch: tf.random.experimental.stateless_shuffle(
                    batch, tf.random.experimental.stateless_fold_in(pass_seed, block)
                )
            ).unbatch()
        return records

    return tf.data.Dataset.range(2**62 if repeat else 1).flat_map(one_pass)


def _example_decoder(image_size, training, tokenizer, seed, image_dtype, context_length,
                     max_pixels, preprocessing):
    """`(position, record) → example`: image preprocessed, caption or ids picked."""

    limit = {} if max_pixels is None else {"max_pixels": max_pixels}
    normalized = image_dtype != "uint8"  # uint8: pixels, normalised by the model
    pad_id = 0 if preprocessing is None else preprocessing.pad_id
    resize = RESIZE_MODES[0] if preprocessing is None else preprocessing.resize
    if preprocessing is not None:  # else image_ops' defaults: CLIP's mean and std
        limit.update(preprocessing.normalization)

    def decode(position, record):
        example = tfrecord_schema.parse_example(record)
        image_seed, caption_seed = tf.unstack(tf.random.experimental.stateless_split(
            tf.stack([tf.constant(seed, tf.int64), position]), 2))
        if training:
            image = image_ops.preprocess_for_train(example["image"], image_size, image_seed,
                                                   normalized=normalized, **limit)
        else:
            image = image_ops.preprocess_for_eval(example["image"], image_size,
                                                  normalized=normalized, resize=resize, **limit)
        captions = example["captions"]
        tf.debugging.assert_positive(tf.size(captions), "record has no caption")
        index = 0
        if training:
            index = tf.random.stateless_uniform(
                [], caption_seed, 0, tf.size(captions), tf.int32
            )
        if image_dtype != "uint8":
            image = tf.cast(image, image_dtype)
        if tokenizer is not None:
            # Tokenized per batch below: the BPE loop is ~7x faster on batches.
            return {"images": image, "captions": captions[index]}
        token_ids = _stored_token_ids(example["token_ids"], tf.size(captions), index,
                                      context_length, pad_id)
        return {"images": image, "token_ids": token_ids}

    return decode


def decode_examples(records, decode, stats, deterministic):
    """`(position, record)`s → examples; undecodable ones skipped and counted."""

    def count_read(position, record):
        with tf.control_dependencies([stats.records_read.assign_add(1)]):
            return position, tf.identity(record)

    def decode_at(position, record):
        return position, decode(position, record)

    def count_delivered(position, example):
        last = stats.last_position
        with tf.control_dependencies([stats.examples_delivered.assign_add(1),
                                      last.assign(tf.maximum(last, position))]):
            return {key: tf.identity(value) for key, value in example.items()}

    examples = records.map(count_read).map(
        decode_at, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    return examples.ignore_errors().map(count_delivered)


def batch_examples(examples, batch_size, tokenizer, drop_remainder, trim_token_ids,
                   deterministic):
    """Examples → batches: tokenized per batch, trimmed, prefetched."""
    dataset = examples.batch(batch_size, drop_remainder=drop_remainder)
    if tokenizer is not None:
        dataset = dataset.map(
            lambda batch: {"images": batch["images"],
                           "token_ids": tokenizer(batch["captions"])},
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=deterministic,
        )
    if trim_token_ids:
        dataset = dataset.map(
            lambda batch: {**batch, "token_ids": trim_to_longest(batch["token_ids"])},
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=deterministic,
        )
    options = tf.data.Options()
    # tf.data already runs elements in parallel; letting each small image op
    # also split across the intra-op pool cost ~20% of throughput here.
    options.threading.max_intra_op_parallelism = 1
    # Sharded above (tf.data's own auto-sharding cannot see through the
    # error-skipping stages, and would shard before the shuffle anyway).
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.OFF
    )
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


def check_delivers(files, decode, stats):
    """Raises `ValueError` unless one pass over `files` delivers an example.

    Decodes records until the first example comes out: the first
    `EAGER_PROBE` records eagerly (no graph to trace, usually one record's
    work), the rest of the pass, if it comes to that, as a pipeline. Only
    data that cannot train at all costs a whole pass.
    """
    probe = DatasetStats(stats.expected)
    records = record_stream(files, training=False, seed=0, repeat=False,
                            deterministic=True, shuffle_buffer=1,
                            damage=probe.damage).enumerate()
    first_error = None
    for position, record in records.take(EAGER_PROBE):
        probe.records_read.assign_add(1)
        try:
            decode(position, record)
            return
        except (tf.errors.OpError, ValueError) as error:
            first_error = first_error or first_line(error)
    rest = decode_examples(records.skip(EAGER_PROBE), decode, probe, deterministic=True)
    for _ in rest.take(1):
        return
    because = ""
    if first_error:
        because = f" The first record fails with: {first_error.rstrip('.')}."
    raise ValueError(
        f"No example could be read from {name_files(files)}: {probe.summary()}.{because}"
    )


def trim_to_longest(token_ids, multiple=TRIM_MULTIPLE):
    """`(B, T)` ids → `(B, T')`: columns past the longest caption dropped.

    `T'` is the longest caption's length (up to its last non-padding id)
    rounded up to `multiple`, at most `T`. Padding is 0 and trails every
    caption, so nothing but padding is cut.
    """
    token_ids = tf.convert_to_tensor(token_ids)
    width = tf.shape(token_ids)[1]
    lengths = tf.where(token_ids != 0, tf.range(1, width + 1)[None, :], 0)
    longest = tf.reduce_max(lengths)
    keep = (longest + multiple - 1) // multiple * multiple
    keep = tf.minimum(width, tf.maximum(keep, multiple))
    return token_ids[:, :keep]


def make_distributed_dataset(strategy, file_pattern, *, batch_size, **kwargs):
    """`make_dataset` for a `tf.distribute` strategy, one pipeline per worker.

    Built with `strategy.distribute_datasets_from_function`: each input
    worker (host) makes its own pipeline of per-replica batches from its
    own files, or, with `input_sharding="examples"`, from its share of the
    one seeded stream, so that a step's replicas together see exactly the
    `batch_size` examples one device would (see `make_dataset`). On one
    host (MirroredStrategy) both are the one-device order. (Handing
    `make_dataset`'s result to `fit` under a strategy works too, but
    TensorFlow's rebatching rewrite re-seeds the shuffle: a valid order, not
    the single-device one.) Pass the result to `model.fit`.
    """
    if batch_size % strategy.num_replicas_in_sync:
        raise ValueError(
            f"batch_size={batch_size} does not split evenly over "
            f"{strategy.num_replicas_in_sync} replicas."
        )

    # Trimming per replica would give the replicas different id widths.
    kwargs["trim_token_ids"] = False

    def dataset_fn(context):
        return make_dataset(
            file_pattern,
            batch_size=context.get_per_replica_batch_size(batch_size),
            input_worker=(context.num_input_pipelines, context.input_pipeline_id),
            **kwargs,
        )

    return strategy.distribute_datasets_from_function(dataset_fn)


def _stored_token_ids(flat_ids, num_captions, index, context_length, pad_id=0):
    """Row `index` of a record's stored ids, fitted to `context_length`.

    A shorter row is padded with `pad_id`. A longer one is cut, and if real
    ids were cut its closing id (the end-of-text token, which CLIP's text
    tower reads) is put back in the last place, as the tokenizer truncates.
    With another `pad_id` than 0 (SigLIP's `</s>`, which both closes and
    pads), a row is its text's ids, as many as fit before one `</s>`, then
    `</s>` to the end: what the tokenizer gives at `context_length`.
    """
    tf.debugging.assert_positive(
        tf.size(flat_ids), "records hold no token_ids: pass a tokenizer"
    )
    tf.debugging.assert_equal(tf.size(flat_ids) % num_captions, 0,
                              "token_ids are not one row per caption")
    width = tf.size(flat_ids) // tf.cast(num_captions, tf.int32)
    rows = tf.reshape(tf.cast(flat_ids, tf.int32), [num_captions, width])
    row = rows[index]  # (width,)
    if context_length is None:  # built inside a graph: the stored width
        return row
    if pad_id:  # the closing id pads too: the text's ids, then it
        text = tf.boolean_mask(row, row != pad_id)[: context_length - 1]
        fitted = tf.concat([text, tf.fill([context_length - tf.size(text)], pad_id)], 0)
        return tf.ensure_shape(fitted, [context_length])
    fitted = tf.pad(row, [[0, tf.maximum(context_length - width, 0)]])[:context_length]
    real = tf.boolean_mask(row, row != 0)
    was_cut = tf.reduce_any(row[context_length:] != 0)
    end = tf.cond(was_cut, lambda: real[-1], lambda: fitted[-1])
    fitted = tf.concat([fitted[:-1], end[None]], 0)
    return tf.ensure_shape(fitted, [context_length])
