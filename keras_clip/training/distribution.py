"""Picks the engine that spreads training over the devices at hand.

TensorFlow backend: `tf.distribute` (TPUStrategy, MultiWorkerMirroredStrategy,
MirroredStrategy); the contrastive loss all-gathers embeddings across its
replicas. JAX backend: `keras.distribution.DataParallel`, which shards the
global batch over all devices (a Colab TPU's cores too) inside one jitted
step that sees the whole batch. PyTorch backend: one device.
"""

import contextlib
import dataclasses
import json
import os

import keras

ENGINES_BY_BACKEND = {
    "tensorflow": ("auto", "none", "mirrored", "multi_worker", "tpu"),
    "jax": ("auto", "none", "data_parallel"),
    "torch": ("auto", "none"),
}


@dataclasses.dataclass
class Distribution:
    """The chosen engine: what to build and fit under, and who writes files."""

    kind: str  # "single", "mirrored", "multi_worker", "tpu" or "data_parallel"
    num_replicas: int
    engine: object = None  # a tf.distribute.Strategy or keras Distribution
    is_chief: bool = True

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

    def check_batch_size(self, global_batch_size):
        if global_batch_size % self.num_replicas:
            raise ValueError(
                f"Invalid training config: batch_size={global_batch_size} does not "
                f"split evenly over {self.num_replicas} replicas ({self.kind}); use a "
                f"multiple of {self.num_replicas}."
            )


def select_distribution(name="auto"):
    """The `Distribution` for `name` (see `TrainConfig.distribution`)."""
    backend = keras.backend.backend()
    if name not in ENGINES_BY_BACKEND[backend]:
        raise ValueError(
            f"Invalid training config: distribution={name!r} is not available on the "
            f"{backend} backend; choose one of {', '.join(ENGINES_BY_BACKEND[backend])}."
        )
    if name == "none":
        return Distribution("single", 1)
    if backend == "jax":
        return _jax_data_parallel()
    if backend == "tensorflow":
        return _tf_strategy(name)
    return Distribution("single", 1)


def _jax_data_parallel():
    import jax

    devices = jax.devices()
    if len(devices) == 1:
        return Distribution("single", 1)
    engine = keras.distribution.DataParallel(devices=devices)
    return Distribution("data_parallel", len(devices), engine, jax.process_index() == 0)


def _tf_strategy(name):
    import tensorflow as tf

    if name == "tpu" or (name == "auto" and _tpu_attached()):
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
        return Distribution("multi_worker", strategy.num_replicas_in_sync, strategy, is_chief)
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
