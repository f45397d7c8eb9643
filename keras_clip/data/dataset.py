"""`make_dataset`: TFRecords → batches of `{"images", "token_ids"}` for `fit`."""

import glob
import json
import os
import random

import tensorflow as tf

from keras_clip.data import image_ops, tfrecord_schema

# Batches' id widths are rounded up to a multiple of this (few XLA shapes).
TRIM_MULTIPLE = 16


class DatasetStats:
    """Counts what a dataset made by `make_dataset` read, delivered and lost.

    The counters are TensorFlow variables updated inside the pipeline, so
    they can be read during iteration and are exact once it is exhausted.
    `expected` comes from the shards' sidecar files (None without them).
    """

    def __init__(self, expected=None):
        self.expected = expected
        self.records_read = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.examples_delivered = tf.Variable(0, dtype=tf.int64, trainable=False)

    def as_dict(self):
        read = int(self.records_read.numpy())
        delivered = int(self.examples_delivered.numpy())
        return {
            "records_read": read,
            "examples_delivered": delivered,
            # Records whose image or caption could not be decoded.
            "examples_skipped": read - delivered,
            # Records lost to damaged files (needs the sidecar counts).
            "records_unreadable": None if self.expected is None else self.expected - read,
        }


def list_shards(file_pattern):
    """The sorted files matching a glob, or a clear error when none do."""
    patterns = [file_pattern] if isinstance(file_pattern, str) else list(file_pattern)
    files = sorted({f for pattern in patterns for f in glob.glob(pattern)})
    files = [f for f in files if not f.endswith((tfrecord_schema.SIDECAR_SUFFIX,))]
    if not files:
        raise FileNotFoundError(f"No TFRecord files match {file_pattern!r}.")
    return files


def expected_records(files):
    """Sum of the sidecar record counts, or None if any shard lacks one."""
    total = 0
    for path in files:
        sidecar = path + tfrecord_schema.SIDECAR_SUFFIX
        if not os.path.exists(sidecar):
            return None
        with open(sidecar) as file:
            total += json.load(file)["records"]
    return total


def make_dataset(file_pattern, *, image_size, batch_size, training, tokenizer=None,
                 shuffle_buffer=2048, seed=None, image_dtype="float32",
                 drop_remainder=True, repeat=False, skip_examples=0,
                 deterministic=None, input_worker=None, stats=None, trim_token_ids=True):
    """A `tf.data` pipeline of CLIP batches from keras_clip TFRecords.

    Files are sharded across input workers (auto-shard by file), read
    interleaved, shuffled when `training`, decoded and preprocessed
    (training: random resized crop 90–100%; evaluation: resize and centre
    crop), tokenized (or stored `token_ids` used), batched (a static batch
    size), trimmed to the longest caption and prefetched. Records that cannot be read or decoded are
    skipped, never fatal, and counted in `stats`.

    With several input workers (MultiWorkerMirroredStrategy, found from
    the current strategy, or `input_worker`), every worker runs the same
    seeded stream and keeps every `num_workers`-th example from its own
    offset, before decoding: the workers' batches then make up exactly the
    global batch one worker would see, so training matches a single-device
    run, and each worker decodes only its share.

    Augmentation and caption choice draw from stateless random ops seeded
    by `(seed, position in the stream)`, so with `deterministic=True` the
    stream is a pure function of `seed`, and `skip_examples=k` resumes it
    exactly where an uninterrupted run would be after `k` examples (records
    are skipped before decoding, so resuming costs no image work; a damaged
    record among the skipped ones shifts the stream by one).

    Args:
        file_pattern: glob (or list of globs) of `.tfrecord` shards.
        image_size: int. Side of the square output images.
        batch_size: int. Batch size (global, under a distribution strategy).
        training: bool. Shuffle, augment and pick a random caption per image.
        tokenizer: a `CLIPTokenizer`; None uses the records' `token_ids`.
        shuffle_buffer: int. Examples in the shuffle buffer when training.
        seed: optional int for the shuffles and augmentation (None: random).
        image_dtype: `"float32"` or `"bfloat16"`.
        drop_remainder: bool. Drop the last partial batch (static shapes,
            needed on TPUs and for even replica splits).
        repeat: bool. Loop over the data forever, reshuffling every pass.
        skip_examples: int. Examples of the stream to skip (resuming).
        deterministic: bool. Keep the order independent of thread timing
            (default: only when not `training`, which is a little faster).
        input_worker: optional `(num_workers, worker_index)`; by default
            taken from the current `tf.distribute` strategy's cluster.
        stats: optional `DatasetStats` to fill; one is made otherwise and
            attached to the result as `dataset.stats`.
        trim_token_ids: bool. Cut each batch's id columns after its longest
            caption, rounded up to a multiple of 16 (`trim_to_longest`). The
            text tower's outputs are the same (attention is causal and reads
            the end-of-text token), at a fraction of the cost: captions are
            mostly far shorter than the context. The id width then varies
            between batches (at most 5 distinct widths for a context of 77,
            each compiled once by XLA); turn it off for one static shape.

    Returns:
        A `tf.data.Dataset` of `{"images": (B, S, S, 3), "token_ids": (B, T)}`.
    """
    files = list_shards(file_pattern)
    single_pass = not repeat and not skip_examples
    stats = stats or DatasetStats(expected_records(files) if single_pass else None)
    deterministic = (not training) if deterministic is None else deterministic
    seed = random.randrange(2**31) if seed is None else seed
    num_workers, worker_index = input_worker or _input_worker()
    if num_workers > 1 and not deterministic:
        raise ValueError(
            "Several input workers must see the same stream: pass deterministic=True "
            "and the same seed on every worker."
        )
    def one_pass(epoch):
        # Shuffled with stateless ops keyed by (seed, pass): the order never
        # depends on the global seed or on how many iterators were made
        # before (Keras makes and drops one under a strategy).
        pass_seed = tf.stack([tf.constant(seed, tf.int64), epoch])
        paths = tf.constant(files)
        if training:
            paths = tf.random.experimental.stateless_shuffle(paths, pass_seed)
        records = tf.data.Dataset.from_tensor_slices(paths).interleave(
            lambda path: tf.data.TFRecordDataset(path).ignore_errors(),
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

    passes = tf.data.Dataset.range(2**62 if repeat else 1)
    dataset = passes.flat_map(one_pass)
    dataset = dataset.enumerate().skip(skip_examples)
    if num_workers > 1:
        dataset = dataset.shard(num_workers, worker_index)

    def count_read(position, record):
        with tf.control_dependencies([stats.records_read.assign_add(1)]):
            return position, tf.identity(record)

    dataset = dataset.map(count_read)

    def prepare(position, record):
        example = tfrecord_schema.parse_example(record)
        image_seed, caption_seed = tf.unstack(tf.random.experimental.stateless_split(
            tf.stack([tf.constant(seed, tf.int64), position]), 2))
        if training:
            image = image_ops.preprocess_for_train(example["image"], image_size, image_seed)
        else:
            image = image_ops.preprocess_for_eval(example["image"], image_size)
        captions = example["captions"]
        tf.debugging.assert_positive(tf.size(captions), "record has no caption")
        index = 0
        if training:
            index = tf.random.stateless_uniform(
                [], caption_seed, 0, tf.size(captions), tf.int32
            )
        image = tf.cast(image, image_dtype)
        if tokenizer is not None:
            # Tokenized per batch below: the BPE loop is ~7x faster on batches.
            return {"images": image, "captions": captions[index]}
        token_ids = _stored_token_ids(example["token_ids"], tf.size(captions), index)
        return {"images": image, "token_ids": token_ids}

    def count_delivered(example):
        with tf.control_dependencies([stats.examples_delivered.assign_add(1)]):
            return {key: tf.identity(value) for key, value in example.items()}

    dataset = dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE,
                          deterministic=deterministic)
    dataset = dataset.ignore_errors().map(count_delivered)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
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
    dataset = dataset.with_options(options).prefetch(tf.data.AUTOTUNE)
    dataset.stats = stats
    return dataset


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
    worker makes its own pipeline of per-replica batches, keeping its share
    of the seeded stream (see `make_dataset`), so a step's replicas together
    see exactly the `batch_size` examples one device would. (Handing
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
    kwargs.setdefault("trim_token_ids", False)

    def dataset_fn(context):
        return make_dataset(
            file_pattern,
            batch_size=context.get_per_replica_batch_size(batch_size),
            input_worker=(context.num_input_pipelines, context.input_pipeline_id),
            **kwargs,
        )

    return strategy.distribute_datasets_from_function(dataset_fn)


def _input_worker():
    """`(num_workers, worker_index)` of the current strategy's cluster."""
    resolver = getattr(tf.distribute.get_strategy(), "cluster_resolver", None)
    if resolver is None:
        return 1, 0
    jobs = resolver.cluster_spec().as_dict()
    num_chiefs, num_workers = len(jobs.get("chief", [])), len(jobs.get("worker", []))
    if num_chiefs + num_workers <= 1:
        return 1, 0
    if resolver.task_type == "chief":
        return num_chiefs + num_workers, 0
    return num_chiefs + num_workers, num_chiefs + (resolver.task_id or 0)


def _stored_token_ids(flat_ids, num_captions, index):
    tf.debugging.assert_positive(
        tf.size(flat_ids), "records hold no token_ids: pass a tokenizer"
    )
    context_length = tf.size(flat_ids) // tf.cast(num_captions, tf.int32)
    rows = tf.reshape(tf.cast(flat_ids, tf.int32), [num_captions, context_length])
    return rows[index]
