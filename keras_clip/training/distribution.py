"""Picks the engine that spreads training over the devices at hand.

TensorFlow backend: `tf.distribute` (TPUStrategy, MultiWorkerMirroredStrategy,
MirroredStrategy); the contrastive loss all-gathers embeddings across its
replicas. JAX backend: `keras.distribution.DataParallel`, which shards the
global batch over all devices (a Colab TPU's cores too) inside one jitted
step that sees the whole batch; with several processes (hosts, a TPU pod
slice) they first join one run through `keras.distribution.initialize`,
and each feeds its own devices. PyTorch backend: one process per device
under `torch.distributed` (started by `torchrun`), each running `fit` on
its own batches with DistributedDataParallel's gradient summing
(`models/torch_data_parallel.py`).
"""

import contextlib
import dataclasses
import json
import os

import keras

ENGINES_BY_BACKEND = {
    "tensorflow": ("auto", "none", "mirrored", "multi_worker", "tpu"),
    "jax": ("auto", "none", "data_parallel"),
    "torch": ("auto", "none", "data_parallel"),
}


@dataclasses.dataclass
class Distribution:
    """The chosen engine: what to build and fit under, and who writes files."""

    kind: str  # "single", "mirrored", "multi_worker", "tpu" or "data_parallel"
    num_replicas: int
    engine: object = None  # a tf.distribute.Strategy or keras Distribution
    is_chief: bool = True
    # A multi-process JAX or PyTorch run: `(num_processes, process_id)`;
    # each process feeds its own devices from its own files.
    input_worker: tuple = None
    # Input pipelines (hosts or processes) that split the data between them.
    input_workers: int = 1

    @contextlib.contextmanager
    def scope(self):
        if self.engine is None:
            yield
            return
        with contextlib.ExitStack() as stack:
            if self.kind == "multi_worker":
                from keras_clip.training.keras_workarounds import multi_worker_fixes

                stack.enter_context(multi_worker_fixes())
            stack.enter_context(self.engine.scope())
            yield

    def check_batch_size(self, global_batch_size, accumulation_steps=1):
        parts = self.num_replicas * accumulation_steps
        if global_batch_size % parts == 0:
            return
        if accumulation_steps == 1:
            split = f"over {self.num_replicas} replicas ({self.kind})"
        else:
            split = (f"into {self.num_replicas} replica(s) ({self.kind}) × "
                     f"accumulation_steps={accumulation_steps} equal micro-batches")
        raise ValueError(
            f"Invalid training config: batch_size={global_batch_size} does not split "
            f"evenly {split}; use a multiple of {parts}."
        )


def select_distribution(name="auto", processes=None):
    """The `Distribution` for `name` (see `TrainConfig.distribution`).

    `processes`: a `Processes` record of a multi-process JAX run (default:
    from the environment, `join_jax_processes`).
    """
    backend = keras.backend.backend()
    if name not in ENGINES_BY_BACKEND[backend]:
        raise ValueError(
            f"Invalid training config: distribution={name!r} is not available on the "
            f"{backend} backend; choose one of {', '.join(ENGINES_BY_BACKEND[backend])}."
        )
    if name == "none":
        return Distribution("single", 1)
    if backend == "jax":
        join_jax_processes(processes or Processes())
        return _jax_data_parallel()
    if backend == "tensorflow":
        return _tf_strategy(name)
    return _torch_processes(name)


@dataclasses.dataclass
class Processes:
    """Where a multi-process JAX run is: unset fields come from the environment.

    `coordinator_address` (process 0's `host:port`), `num_processes` and
    `process_id` default to Keras' variables `KERAS_DISTRIBUTION_JOB_ADDRESSES`,
    `KERAS_DISTRIBUTION_NUM_PROCESSES` and `KERAS_DISTRIBUTION_PROCESS_ID`.
    On a TPU pod slice (several `TPU_WORKER_HOSTNAMES`) JAX finds all three.
    """

    coordinator_address: str = None
    num_processes: int = None
    process_id: int = None

    def from_environment(self):
        environ = os.environ
        return Processes(
            self.coordinator_address or environ.get(_ENV["coordinator_address"]) or None,
            self.num_processes if self.num_processes is not None
            else _int_from(environ, _ENV["num_processes"]),
            self.process_id if self.process_id is not None
            else _int_from(environ, _ENV["process_id"]))


_ENV = {"coordinator_address": "KERAS_DISTRIBUTION_JOB_ADDRESSES",
        "num_processes": "KERAS_DISTRIBUTION_NUM_PROCESSES",
        "process_id": "KERAS_DISTRIBUTION_PROCESS_ID"}


def _int_from(environ, name):
    if not environ.get(name):
        return None
    try:
        return int(environ[name])
    except ValueError:
        raise ValueError(f"Invalid training config: {name}={environ[name]!r} is not an "
                         "integer.") from None


def join_jax_processes(processes):
    """Joins this process to a multi-process JAX run, once; True if it is one.

    Needs all three settings of `processes` (or the environment), or a TPU
    pod slice, where JAX finds them. Must run before JAX touches a device.
    """
    import jax

    if jax.distributed.is_initialized():
        return True
    settings = processes.from_environment()
    pod_slice = "," in os.environ.get("TPU_WORKER_HOSTNAMES", "")
    given = {key: value for key, value in dataclasses.asdict(settings).items()
             if value is not None}
    if not pod_slice and (not given or settings.num_processes == 1):
        return False
    if not pod_slice and len(given) < 3:
        missing = sorted(set(_ENV) - set(given))
        raise ValueError(
            f"Invalid training config: a multi-process JAX run needs coordinator_address, "
            f"num_processes and process_id; {', '.join(missing)} not set (keys, or "
            f"{', '.join(_ENV[key] for key in missing)}).")
    if not pod_slice and not 0 <= settings.process_id < settings.num_processes:
        raise ValueError(
            f"Invalid training config: process_id={settings.process_id} is not one of the "
            f"{settings.num_processes} processes (0 to {settings.num_processes - 1}).")
    keras.distribution.initialize(settings.coordinator_address, settings.num_processes,
                                  settings.process_id)
    return True


def _jax_data_parallel():
    import jax

    devices = jax.devices()  # every process's, once joined
    if len(devices) == 1:
        return Distribution("single", 1)
    processes = jax.process_count()
    if processes == 1:
        engine = keras.distribution.DataParallel(devices=devices)
        return Distribution("data_parallel", len(devices), engine)
    # Each process hands Keras its own part of the global batch.
    engine = keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
    return Distribution("data_parallel", len(devices), engine, jax.process_index() == 0,
                        input_worker=(processes, jax.process_index()), input_workers=processes)


def _torch_processes(name):
    """This process's place in a `torch.distributed` run `torchrun` started."""
    world_size = _int_from(os.environ, "WORLD_SIZE") or 1
    if world_size == 1:
        if name == "data_parallel":
            raise ValueError(
                "Invalid training config: distribution='data_parallel' on the torch backend "
                "runs one process per device, started by torchrun (WORLD_SIZE is not set "
                "here): torchrun --nproc-per-node=N -m keras_clip.cli train ...")
        return Distribution("single", 1)
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(_int_from(os.environ, "LOCAL_RANK") or 0)
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = dist.get_rank()
    return Distribution("data_parallel", world_size, is_chief=rank == 0,
                        input_worker=(world_size, rank), input_workers=world_size)


def _tf_strategy(name):
    import tensorflow as tf

    if name == "tpu" or (name == "auto" and _tpu_attached()):
        _check_tensorflow_runs_tpus(attached=name == "auto" or _tpu_attached())
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        strategy = tf.distribute.TPUStrategy(resolver)
        return Distribution("tpu", strategy.num_replicas_in_sync, strategy)
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}"))
    tasks = sum(len(v) for k, v in cluster.get("cluster", {}).items() if k in ("chief", "worker"))
    if name == "multi_worker" or (name == "auto" and tasks > 1):
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        task = cluster.get("task", {})
        has_chief = "chief" in cluster.get("cluster", {})
        is_chief = task.get("type") == "chief" or (
            not has_chief and task.get("type", "worker") == "worker"
            and task.get("index", 0) == 0
        )
        return Distribution("multi_worker", strategy.num_replicas_in_sync, strategy, is_chief,
                            input_workers=tasks)
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        # Without GPUs, mirror over the logical CPUs (how the tests run it).
        devices = tuple(d.name for d in (gpus or tf.config.list_logical_devices("CPU")))
        # One strategy per device set and process: two MirroredStrategy
        # objects number their collective ops alike, and TensorFlow then
        # mixes up their all-gathers ("Shape mismatch in the collective").
        if devices not in _MIRRORED:
            _MIRRORED[devices] = tf.distribute.MirroredStrategy(list(devices))
        strategy = _MIRRORED[devices]
        return Distribution("mirrored", strategy.num_replicas_in_sync, strategy)
    return Distribution("single", 1)


_MIRRORED = {}


def _check_tensorflow_runs_tpus(attached):
    """Stops at once, in one line, where TensorFlow cannot train on this TPU."""
    import tensorflow as tf

    version = tf.version.VERSION
    if not attached:
        raise ValueError("Invalid training config: distribution='tpu', but this machine "
                         "has no TPU (no TPU_NAME, COLAB_TPU_ADDR or /dev/accel*).")
    if not _tensorflow_runs_tpus(version):
        raise ValueError(
            f"This machine has a TPU, but TensorFlow {version} here is not a TPU build "
            f"(tensorflow-tpu {'.'.join(version.split('.')[:2])} is not installed). Train on "
            "TPUs with the JAX backend, keras_clip's supported TPU path: "
            "KERAS_BACKEND=jax keras-clip train ... (distribution=auto uses every TPU core).")


def _tensorflow_runs_tpus(version):
    """Whether `tensorflow-tpu` of TensorFlow's own minor version is installed."""
    from importlib import metadata

    try:
        tpu_version = metadata.version("tensorflow-tpu")
    except metadata.PackageNotFoundError:
        return False
    return tpu_version.split(".")[:2] == version.split(".")[:2]


def _tpu_attached():
    # Cheap checks first: resolving a TPU that is not there can take a while.
    return bool(os.environ.get("TPU_NAME") or os.environ.get("COLAB_TPU_ADDR")) or any(
        name.startswith("accel") for name in _safe_listdir("/dev")
    )


def _safe_listdir(path):
    try:
        return os.listdir(path)
    except OSError:
        return []
