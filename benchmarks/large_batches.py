"""Large batches: the chunked loss's memory, and a training step's memory and time.

    PYTHONPATH=. python benchmarks/large_batches.py --json large_batches.json
    PYTHONPATH=. python benchmarks/large_batches.py --only loss   # or: train

Every measurement runs in a fresh child process, one after another; peak
memory is the child's peak resident set (`VmHWM`) less what it held before
the measured work.

- `loss`: `contrastive_loss_and_gradients` (chunks of 512 rows) over N
  unit-norm pairs of width 512, against the dense loss under the backend's
  autodiff (`(N, N)` logits) where that fits, and SigLIP's objective's
  chunked `loss_and_gradients` at N = 32,768: seconds per call (the median
  of 3) and peak memory beyond the embeddings. On JAX (the default) both
  are compiled ahead of the first call, as inside a training step, and the
  memory is measured from there; on the other backends the first call's
  tracing is counted too.
- `train`: `keras_clip.training.train` with the tiny-vit preset on stored
  shards (32-pixel JPEGs, stored token ids), at batch 256 and at batch
  32,768 in 128 accumulation steps (micro-batches of 256): seconds per
  optimizer step (median over the steps after the first) and the process's
  peak RSS. Accumulation's target: ≤ 1.3× the batch-256 run's peak RSS and
  ≤ 1.4 × 128 × its step time (one more forward pass per micro-batch).
- `accumulate`: one optimizer step over a batch of 2,048 as 8 micro-batches
  of 256 on the benchmark ViT, keras_clip's cached gradients beside
  OpenCLIP's `--accum-freq` training loop (`accumulation_workers.py`):
  seconds per step and peak RSS, captions padded to 77 tokens on both sides
  (the same work) and, for keras_clip, trimmed to the batch's longest as
  `make_dataset` delivers them.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

CHUNK, WIDTH = 512, 512


def resident(field="VmRSS"):
    """This process's resident memory (`VmRSS`) or its peak (`VmHWM`), in bytes."""
    with open("/proc/self/status") as file:
        line = next(line for line in file if line.startswith(field + ":"))
    return int(line.split()[1]) * 1024


def reset_peak():
    """Makes `VmHWM` restart from the current RSS (Linux ≥ 4.0: write 5 to clear_refs)."""
    with open("/proc/self/clear_refs", "w") as file:
        file.write("5")


def loss_worker(rows, dense, sigmoid=False):
    import keras
    import numpy as np

    from keras_clip.losses.chunked_contrastive_loss import contrastive_loss_and_gradients

    rng = np.random.default_rng(0)
    embeddings = []
    for _ in range(2):
        x = rng.normal(size=(rows, WIDTH)).astype("float32")
        embeddings.append(keras.ops.convert_to_tensor(x / np.linalg.norm(x, axis=1,
                                                                         keepdims=True)))
    image, text = embeddings
    log_scale = keras.ops.convert_to_tensor(np.float32(np.log(1 / 0.07)))
    run = dense_gradients(image, text, log_scale) if dense else (
        lambda: contrastive_loss_and_gradients(image, text, log_scale, chunk_size=CHUNK))
    if sigmoid:
        run = sigmoid_loss_and_gradients(image, text)
    run = compiled(run)
    # Compiled but not yet run: the allocator has not yet grown for the work.
    before = resident()
    reset_peak()
    seconds = []
    for _ in range(3):
        start = time.perf_counter()
        keras.ops.convert_to_numpy(run()["loss"])
        seconds.append(time.perf_counter() - start)
    return {"seconds": sorted(seconds)[1], "peak_extra_bytes": resident("VmHWM") - before}


def sigmoid_loss_and_gradients(image, text):
    """SigLIP's objective's chunked loss and gradients (scale 10, bias -10)."""
    import keras
    import numpy as np

    from keras_clip.losses.sigmoid_objective import SigmoidObjective

    objective = SigmoidObjective()
    weights = {"logit_scale": keras.ops.convert_to_tensor(np.float32(np.log(10.0))),
               "logit_bias": keras.ops.convert_to_tensor(np.float32(-10.0))}

    def run():
        loss, _, _, gradients = objective.loss_and_gradients(weights, image, text, CHUNK)
        return {"loss": loss, **gradients}

    return run


def compiled(run):
    """`run` compiled ahead of its first call, as a training step would be (JAX only)."""
    import keras

    if keras.backend.backend() != "jax":
        return run
    import jax

    return jax.jit(run).lower().compile()


def dense_gradients(image, text, log_scale):
    """The dense loss and its gradients under this backend's autodiff."""
    import keras

    from keras_clip.losses.contrastive_loss import contrastive_logits, contrastive_loss

    def loss(image, text, log_scale):
        return contrastive_loss(*contrastive_logits(image, text, log_scale))

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        step = jax.value_and_grad(loss, argnums=(0, 1, 2))
        return lambda: {"loss": step(image, text, log_scale)[0]}
    if backend == "torch":
        import torch

        def step():
            leaves = [t.detach().clone().requires_grad_() for t in (image, text, log_scale)]
            value = loss(*leaves)
            torch.autograd.grad(value, leaves)
            return {"loss": value.detach()}

        return step
    import tensorflow as tf

    @tf.function(jit_compile=True)
    def step():
        with tf.GradientTape() as tape:
            tape.watch([image, text, log_scale])
            value = loss(image, text, log_scale)
        tape.gradient(value, [image, text, log_scale])
        return {"loss": value}

    return step


class StepTimes:
    """A Keras callback recording each optimizer step's wall time."""

    def __new__(cls):
        import keras

        class Callback(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.seconds = []

            def on_train_batch_begin(self, batch, logs=None):
                self._start = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                self.seconds.append(time.perf_counter() - self._start)

        return Callback()


def train_worker(pattern, batch_size, accumulation_steps, steps, output_dir):
    from keras_clip.training import train

    times = StepTimes()
    train({"preset": "tiny-vit", "train_data": pattern, "tokenizer": None,
           "batch_size": batch_size, "accumulation_steps": accumulation_steps,
           "steps": steps, "warmup_steps": 1, "shuffle_buffer": 1024,
           "checkpoint_every": steps, "output_dir": output_dir, "verbose": 0},
          callbacks=[times])
    later = sorted(times.seconds[1:])
    return {"seconds_per_step": later[len(later) // 2], "first_step_seconds": times.seconds[0],
            "peak_rss_bytes": resident("VmHWM")}


def accumulate_rows(backend, steps):
    print("| trainer | backend | captions | seconds per step | peak RSS (MiB) | "
          "OpenCLIP's time / this one's |")
    print("|---|---|---|---|---|---|")
    common = {"config": "vit", "batch": 2048, "accumulation": 8, "steps": steps}
    jobs = [("OpenCLIP --accum-freq 8", "torch", {"worker": "open_clip_accumulate",
                                                   "trim": False}),
            ("keras_clip accumulation_steps=8", backend, {"worker": "keras_accumulate",
                                                          "trim": False}),
            ("keras_clip accumulation_steps=8", backend, {"worker": "keras_accumulate",
                                                          "trim": True})]
    rows = []
    for name, job_backend, job in jobs:
        row = run_child({"kind": "accumulate", **common, **job}, job_backend)
        rows.append(row)
        captions = "trimmed" if job["trim"] else "padded to 77"
        if "error" in row:
            print(f"| {name} | {job_backend} | {captions} | failed: {row['error']} | | |")
            continue
        ratio = rows[0].get("seconds_per_step", float("nan")) / row["seconds_per_step"]
        print(f"| {name} | {job_backend} | {captions} | {row['seconds_per_step']:.1f} | "
              f"{row['peak_rss_mib']:.0f} | {ratio:.2f} |")
    return rows


def run_child(job, backend):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)], env=env,
                          capture_output=True, text=True, timeout=3600)
    if done.returncode:
        return {**job, "error": done.stderr.strip().splitlines()[-1:]}
    return {**job, **json.loads(done.stdout.strip().splitlines()[-1])}


def loss_rows(backend):
    print("| N | loss | seconds per call | peak memory beyond the embeddings (MiB) |")
    print("|---|---|---|---|")
    rows = []
    for n, dense, sigmoid in ((8192, True, False), (8192, False, False), (32768, False, False),
                              (32768, False, True)):
        row = run_child({"kind": "loss", "rows": n, "dense": dense, "sigmoid": sigmoid},
                        backend)
        rows.append(row)
        name = "dense, autodiff" if dense else f"chunked ({CHUNK} rows)"
        name = f"sigmoid (SigLIP), {name}" if sigmoid else name
        if "error" in row:
            print(f"| {n} | {name} | failed: {row['error']} | |")
            continue
        print(f"| {n} | {name} | {row['seconds']:.2f} | "
              f"{row['peak_extra_bytes'] / 2**20:.0f} |")
    return rows


def train_rows(backend, records):
    from keras_clip.data.synthetic_pairs import write_synthetic_tfrecords

    scratch = tempfile.mkdtemp(prefix="large-batches-")
    pattern = write_synthetic_tfrecords(scratch, count=records, num_shards=8, image_size=32)
    print("| batch | accumulation steps | micro-batch | seconds per step | peak RSS (MiB) |")
    print("|---|---|---|---|---|")
    rows = []
    for batch, steps, count in ((256, 1, 12), (32768, 128, 3)):
        row = run_child({"kind": "train", "pattern": pattern, "batch_size": batch,
                         "accumulation_steps": steps, "steps": count,
                         "output_dir": os.path.join(scratch, f"run-{batch}")}, backend)
        rows.append(row)
        if "error" in row:
            print(f"| {batch} | {steps} | {batch // steps} | failed: {row['error']} | |")
            continue
        print(f"| {batch} | {steps} | {batch // steps} | {row['seconds_per_step']:.2f} | "
              f"{row['peak_rss_bytes'] / 2**20:.0f} |")
    small, large = rows
    if "error" not in small and "error" not in large:
        print(f"peak RSS ratio {large['peak_rss_bytes'] / small['peak_rss_bytes']:.2f} "
              f"(target ≤ 1.3); step time / (128 × batch-256 step) "
              f"{large['seconds_per_step'] / (128 * small['seconds_per_step']):.2f} "
              "(target ≤ 1.4)")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="jax", choices=("tensorflow", "jax", "torch"))
    parser.add_argument("--only", choices=("loss", "train", "accumulate"))
    parser.add_argument("--steps", type=int, default=2, help="timed accumulate steps")
    parser.add_argument("--records", type=int, default=4096, help="stored training pairs")
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        job = json.loads(args.worker)
        kind = job.pop("kind")
        if kind == "accumulate":
            from accumulation_workers import WORKERS

            result = WORKERS[job.pop("worker")](job)
        else:
            result = loss_worker(**job) if kind == "loss" else train_worker(**job)
        print(json.dumps(result))
        return
    results = {"backend": args.backend}
    if args.only in (None, "loss"):
        results["loss"] = loss_rows(args.backend)
    if args.only in (None, "train"):
        results["train"] = train_rows(args.backend, args.records)
    if args.only in (None, "accumulate"):
        results["accumulate"] = accumulate_rows(args.backend, args.steps)
    if args.json:
        with open(args.json, "w") as file:
            json.dump(results, file, indent=2)


if __name__ == "__main__":
    main()
