"""train() under each distribution engine equals the single-device run.

Same data, same seed, same global batch of 8: two replicas (MirroredStrategy
over two logical CPUs; JAX DataParallel over two forced host devices) must
end at the single-device weights to 1e-5. Two hosts (MultiWorkerMirrored
with two worker processes on localhost; two JAX processes) each read their
own shard, and must end at the weights of one device fed, each step, both
workers' batches (`run_distributed --as-workers`). Adam's epsilon is set to 1 here:
with the default 1e-6, a gradient that is zero up to rounding moves a weight
by ±lr depending on the order replicas sum in, and that noise, not the
engines, would dominate the comparison.
"""

import json
import os
import re
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_clip.training import train
from tests.training.shards import write_training_shards

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BACKEND = keras.backend.backend()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_training_shards(tmp_path_factory.mktemp("shards"), count=32)


def config(data, output_dir, distribution):
    return {"preset": "tiny-vit", "train_data": data, "tokenizer": None, "batch_size": 8,
            "steps": 3, "warmup_steps": 1, "learning_rate": 0.05, "epsilon": 1.0,
            "checkpoint_every": 3, "output_dir": str(output_dir), "verbose": 0,
            "distribution": distribution}


def two_host_devices():
    """`XLA_FLAGS` for two host devices, keeping the run's own flags."""
    return f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2".strip()


def run_processes(configs, tmp_path, environments, options=()):
    """Runs `run_distributed` once per (config, environment), all at once.

    `options`: `run_distributed`'s, the same for every process, or a list
    of them, one per process. Returns each process's final weights (None
    for one run with `--stop-at`, which writes none) and outputs.
    """
    if not options or not isinstance(options[0], (list, tuple)):
        options = [options] * len(configs)
    processes = []
    for i, (cfg, env, extra) in enumerate(zip(configs, environments, options)):
        path = tmp_path / f"config-{i}.json"
        path.write_text(json.dumps(cfg))
        (tmp_path / f"weights-{i}.npz").unlink(missing_ok=True)
        command = [sys.executable, "-m", "tests.training.run_distributed", str(path),
                   str(tmp_path / f"weights-{i}.npz"), *map(str, extra)]
        full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **env)
        processes.append(subprocess.Popen(command, cwd=ROOT, env=full_env, text=True,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    weights = []
    for i, (process, output, extra) in enumerate(zip(processes, outputs, options)):
        assert process.returncode == 0, output[-3000:]
        if "--stop-at" in extra:
            weights.append(None)
            continue
        path = tmp_path / f"weights-{i}.npz"
        assert path.exists(), output[-3000:]
        arrays = np.load(path)
        weights.append([arrays[k] for k in arrays.files])
    return weights, outputs


def max_difference(a, b):
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


def initial_weights(objective="contrastive"):
    """What train() starts from: it seeds with the config's seed (0)."""
    from keras_clip import CLIPModel

    keras.utils.set_random_seed(0)
    model = CLIPModel.from_preset("tiny-vit")
    model = CLIPModel(model.image_encoder, model.text_encoder, objective=objective)
    return [keras.ops.convert_to_numpy(w) for w in model.weights]


def assert_same_training(single, replicated, objective="contrastive"):
    assert len(single) == len(replicated)
    # Training moved them.
    assert max_difference(single, initial_weights(objective)) > 1e-3
    assert max_difference(single, replicated) <= 1e-5


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.distribute runs on TensorFlow")
def test_mirrored_over_two_cpus_matches_one_device(data, tmp_path):
    single = train(config(data, tmp_path / "single", "none"))
    mirrored = train(config(data, tmp_path / "mirrored", "mirrored"))
    assert (mirrored.distribution, mirrored.replicas) == ("mirrored", 2)
    assert_same_training([keras.ops.convert_to_numpy(w) for w in single.model.weights],
                         [keras.ops.convert_to_numpy(w) for w in mirrored.model.weights])


@pytest.mark.slow
@pytest.mark.skipif(BACKEND != "jax", reason="keras.distribution runs on JAX")
def test_jax_data_parallel_over_two_host_devices_accumulating_matches_one_device(data,
                                                                                tmp_path):
    # Each device's 4 rows of the global 8 as 2 micro-batches of 2: the step
    # is one device's whole-batch step. With SigLIP's objective (the step
    # sees the global batch whatever the objective; the two-process test
    # below runs CLIP's, without accumulation).
    env = {"KERAS_BACKEND": "jax", "XLA_FLAGS": two_host_devices()}
    sigmoid = {"objective": "sigmoid"}
    (single, parallel), outputs = run_processes(
        [dict(config(data, tmp_path / "single", "none"), **sigmoid),
         dict(config(data, tmp_path / "parallel", "data_parallel"), accumulation_steps=2,
              **sigmoid)],
        tmp_path, [env, env])
    assert "trained with data_parallel over 2 replicas" in outputs[1]
    assert_same_training(single, parallel, objective="sigmoid")


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.distribute runs on TensorFlow")
def test_two_workers_on_localhost_train_as_one_fed_their_global_batches(data, tmp_path):
    """Each worker reads its own shard; one process fed both workers' batches agrees."""
    workers = [f"localhost:{port}" for port in free_ports(2)]
    environments = [{"KERAS_BACKEND": "tensorflow", "TF_CONFIG": json.dumps(
        {"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})}
        for i in range(2)]
    multi = config(data, tmp_path / "multi", "multi_worker")
    # The one-process reference runs beside the two workers.
    (chief, other, single), outputs = run_processes(
        [multi, multi, config(data, tmp_path / "single", "none")], tmp_path,
        [*environments, {"KERAS_BACKEND": "tensorflow"}], [(), (), ("--as-workers", 2)])
    assert "trained with multi_worker over 2 replicas" in outputs[0]
    assert_same_training(single, chief)
    assert max_difference(chief, other) == 0.0
    # Only the chief's files land in output_dir.
    assert os.path.exists(tmp_path / "multi" / "model.keras")


@pytest.mark.slow
@pytest.mark.skipif(BACKEND != "jax", reason="multi-process JAX")
def test_two_jax_processes_train_as_one_fed_their_global_batches(data, tmp_path):
    """Two processes on localhost (gloo), each reading its own shard.

    Killed after step 3 (checkpoint at 2) and resumed to step 4, they end
    at the weights of one process fed, each step, both processes' batches.
    """
    multi = {**config(data, tmp_path / "multi", "auto"), "steps": 4, "checkpoint_every": 2}
    environment = {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu",
                   "JAX_CPU_COLLECTIVES_IMPLEMENTATION": "gloo"}

    def processes():  # the settings README's "Scaling out" passes with --set
        address = f"localhost:{free_ports(1)[0]}"
        return [{**multi, "coordinator_address": address, "num_processes": 2,
                 "process_id": index} for index in range(2)]

    # The one-process reference runs beside the two processes killed at step 3.
    single = {**multi, "output_dir": str(tmp_path / "single"), "distribution": "none"}
    (_, _, reference), _ = run_processes(
        [*processes(), single], tmp_path, [environment, environment, {"KERAS_BACKEND": "jax"}],
        [("--stop-at", 3), ("--stop-at", 3), ("--as-workers", 2)])
    checkpoints = tmp_path / "multi" / "checkpoints"
    assert sorted(os.listdir(checkpoints)) == ["latest.json", "step-000000002.keras"]
    (chief, other), outputs = run_processes(processes(), tmp_path, [environment] * 2)
    assert "trained with data_parallel over 2 replicas" in outputs[0]
    assert_same_training(reference, chief)
    assert max_difference(chief, other) == 0.0
    # Only process 0 writes into output_dir: one TensorBoard file per run.
    events = [name for _, _, names in os.walk(tmp_path / "multi" / "logs")
              for name in names]
    assert len(events) == 2, events  # train/ of the killed run and of the resumed one


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow's TPU path")
@pytest.mark.parametrize("name", ["auto", "tpu"])
def test_a_tpu_without_tensorflow_tpu_stops_at_once_pointing_to_jax(name, monkeypatch):
    from keras_clip.training import distribution

    monkeypatch.setenv("TPU_NAME", "local")  # what a TPU VM sets
    monkeypatch.setattr(distribution, "_tensorflow_runs_tpus", lambda version: False)
    with pytest.raises(ValueError, match="not a TPU build.*JAX backend") as error:
        distribution.select_distribution(name)
    assert "\n" not in str(error.value)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow's TPU path")
def test_distribution_tpu_without_a_tpu_says_so(monkeypatch):
    from keras_clip.training import distribution

    for variable in ("TPU_NAME", "COLAB_TPU_ADDR"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(distribution, "_safe_listdir", lambda path: [])
    with pytest.raises(ValueError, match="has no TPU"):
        distribution.select_distribution("tpu")


@pytest.mark.skipif(BACKEND != "jax", reason="multi-process JAX")
def test_jax_processes_join_from_settings_or_a_pod_slice(monkeypatch):
    from keras_clip.training.distribution import Processes, join_jax_processes

    calls = []
    monkeypatch.setattr(keras.distribution, "initialize", lambda *args: calls.append(args))
    for variable in ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES",
                     "KERAS_DISTRIBUTION_PROCESS_ID", "TPU_WORKER_HOSTNAMES"):
        monkeypatch.delenv(variable, raising=False)
    assert not join_jax_processes(Processes())  # one process: nothing to join
    assert not join_jax_processes(Processes(num_processes=1))
    with pytest.raises(ValueError, match="coordinator_address, process_id not set"):
        join_jax_processes(Processes(num_processes=2))
    with pytest.raises(ValueError, match="process_id=2 is not one of the 2 processes"):
        join_jax_processes(Processes("host:1234", 2, 2))
    monkeypatch.setenv("KERAS_DISTRIBUTION_JOB_ADDRESSES", "host:1234")
    monkeypatch.setenv("KERAS_DISTRIBUTION_NUM_PROCESSES", "4")
    assert join_jax_processes(Processes(process_id=3))  # the rest from the environment
    assert calls == [("host:1234", 4, 3)]
    for variable in ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES"):
        monkeypatch.delenv(variable)
    monkeypatch.setenv("TPU_WORKER_HOSTNAMES", "t1v-0,t1v-1")  # a pod slice: JAX finds all
    assert join_jax_processes(Processes())
    assert calls[-1] == (None, None, None)


@pytest.mark.slow
@pytest.mark.skipif(BACKEND != "torch", reason="torch.distributed")
def test_two_torch_processes_train_as_one_fed_their_global_batches(data, tmp_path):
    """Two processes on localhost (gloo), as torchrun starts them, each with its shard.

    Validation too: each process scores its slice of every global batch, and
    the logged loss is the global batch's.
    """
    multi = {**config(data, tmp_path / "multi", "data_parallel"), "validation_data": data}
    port = free_ports(1)[0]
    environments = [{"KERAS_BACKEND": "torch", "MASTER_ADDR": "localhost",
                     "MASTER_PORT": str(port), "WORLD_SIZE": "2", "RANK": str(rank),
                     "LOCAL_RANK": str(rank)} for rank in range(2)]
    single = {**multi, "output_dir": str(tmp_path / "single"), "distribution": "none"}
    # The one-process reference runs beside the two processes.
    (chief, other, reference), outputs = run_processes(
        [multi, multi, single], tmp_path, [*environments, {"KERAS_BACKEND": "torch"}],
        [(), (), ("--as-workers", 2)])
    assert "trained with data_parallel over 2 replicas" in outputs[0]
    assert_same_training(reference, chief)
    assert max_difference(chief, other) == 0.0
    assert os.path.exists(tmp_path / "multi" / "model.keras")
    validation = [float(re.search(r"val_loss (\S+)", text).group(1)) for text in outputs]
    np.testing.assert_allclose(validation, validation[-1], rtol=1e-5)


@pytest.mark.skipif(BACKEND == "tensorflow", reason="TensorFlow is the backend: it keeps its GPUs")
def test_tensorflow_reading_data_for_another_backend_leaves_the_gpus_alone(monkeypatch):
    import tensorflow as tf

    from keras_clip.data.host_tensorflow import keep_tensorflow_on_the_host

    hidden = []
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["GPU:0"])
    monkeypatch.setattr(tf.config, "set_visible_devices",
                        lambda devices, kind=None: hidden.append((devices, kind)))
    assert keep_tensorflow_on_the_host()
    assert hidden == [([], "GPU")]
