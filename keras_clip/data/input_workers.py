"""How several input workers (hosts, processes) split `make_dataset`'s data."""

import tensorflow as tf

# Each file-sharded worker's seed: the run's, plus this times its index.
WORKER_SEED_STRIDE = 1_000_003


def worker_share(files, seed, skip_examples, input_worker, input_sharding, deterministic):
    """`(files, seed, skip_examples, (num_workers, worker_index))` of this worker's stream.

    `input_worker` (default: the current `tf.distribute` cluster's) and
    `input_sharding` as `make_dataset` takes them. With `"files"`, the
    worker's own shards, seed and share of the skip, and `(1, 0)`: the rest
    of the pipeline reads them as one stream. With `"examples"`, everything
    as given: the pipeline keeps every `num_workers`-th example.
    """
    if input_sharding not in ("files", "examples"):
        raise ValueError(f"input_sharding must be 'files' or 'examples', not "
                         f"{input_sharding!r}.")
    num_workers, worker_index = input_worker or cluster_worker()
    if not 0 <= worker_index < num_workers:
        raise ValueError(f"input_worker=({num_workers}, {worker_index}): the index must be "
                         f"0 to {num_workers - 1}.")
    if num_workers > 1 and input_sharding == "files":
        return (worker_files(files, num_workers, worker_index),
                (seed + WORKER_SEED_STRIDE * worker_index) % 2**31,
                _worker_skip(skip_examples, num_workers), (1, 0))
    if num_workers > 1 and not deterministic:
        raise ValueError(
            "Several input workers must see the same stream: pass deterministic=True "
            "and the same seed on every worker."
        )
    return files, seed, skip_examples, (num_workers, worker_index)


def worker_files(files, num_workers, worker_index):
    """Shards `worker_index, worker_index + num_workers, …` of the sorted `files`.

    Raises `ValueError` naming both numbers when there are fewer files
    than workers (a worker would have nothing to read).
    """
    if len(files) < num_workers:
        raise ValueError(
            f"{len(files)} TFRecord file(s) for {num_workers} input workers: with "
            "input_sharding='files' each worker reads its own files, so write at least "
            f"{num_workers} shards (make-tfrecords --shard-size-mb), or set "
            "input_sharding='examples' (every worker reads all of them).")
    return files[worker_index::num_workers]


def _worker_skip(skip_examples, num_workers):
    """A worker's share of `skip_examples` global examples (its own stream)."""
    if skip_examples % num_workers:
        raise ValueError(f"skip_examples={skip_examples} does not split evenly over "
                         f"{num_workers} input workers.")
    return skip_examples // num_workers


def cluster_worker():
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
