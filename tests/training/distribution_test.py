"""train() under each distribution engine equals the single-device run.

Same data, same seed, same global batch of 8: two replicas (MirroredStrategy
over two logical CPUs; JAX DataParallel over two forced host devices;
MultiWorkerMirroredStrategy with two worker processes on localhost) must
end at the single-device weights to 1e-5. Adam's epsilon is set to 1 here:
with the default 1e-6, a gradient that is zero up to rounding moves a weight
by ±lr depending on the order replicas sum in, and that noise, not the
engines, would dominate the comparison.
"""

import json
import os
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


def run_processes(configs, tmp_path, environments):
    """Runs `run_distributed` once per (config, environment); returns weights."""
    processes = []
    for i, (cfg, env) in enumerate(zip(configs, environments)):
        path = tmp_path / f"config-{i}.json"
        path.write_text(json.dumps(cfg))
        command = [sys.executable, "-m", "tests.training.run_distributed", str(path),
                   str(tmp_path / f"weights-{i}.npz")]
        full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **env)
        processes.append(subprocess.Popen(command, cwd=ROOT, env=full_env, text=True,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    weights = []
    for i, output in enumerate(outputs):
        path = tmp_path / f"weights-{i}.npz"
        assert path.exists(), output[-3000:]
        arrays = np.load(path)
        weights.append([arrays[k] for k in arrays.files])
    return weights, outputs


def max_difference(a, b):
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


def initial_weights():
    """What train() starts from: it seeds with the config's seed (0)."""
    from keras_clip import CLIPModel

    keras.utils.set_random_seed(0)
    return [keras.ops.convert_to_numpy(w) for w in CLIPModel.from_preset("tiny-vit").weights]


def assert_same_training(single, replicated):
    assert len(single) == len(replicated)
    assert max_difference(single, initial_weights()) > 1e-3  # training moved them
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
def test_jax_data_parallel_over_two_host_devices_matches_one_device(data, tmp_path):
    env = {"KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    (single, parallel), outputs = run_processes(
        [config(data, tmp_path / "single", "none"),
         config(data, tmp_path / "parallel", "data_parallel")], tmp_path, [env, env])
    assert "trained with data_parallel over 2 replicas" in outputs[1]
    assert_same_training(single, parallel)


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
def test_two_workers_on_localhost_match_one_device(data, tmp_path):
    workers = [f"localhost:{port}" for port in free_ports(2)]
    environments = [{"KERAS_BACKEND": "tensorflow", "TF_CONFIG": json.dumps(
        {"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})}
        for i in range(2)]
    multi = config(data, tmp_path / "multi", "multi_worker")
    (chief, other), outputs = run_processes([multi, multi], tmp_path, environments)
    assert "trained with multi_worker over 2 replicas" in outputs[0]
    (single,), _ = run_processes([config(data, tmp_path / "single", "none")], tmp_path,
                                 [{"KERAS_BACKEND": "tensorflow"}])
    assert_same_training(single, chief)
    assert max_difference(chief, other) == 0.0
    # Only the chief's files land in output_dir.
    assert os.path.exists(tmp_path / "multi" / "model.keras")
