"""Training and inference throughput of keras_clip beside OpenCLIP, one run.

    PYTHONPATH=. python benchmarks/training_throughput.py --json results.json

The measurements themselves are in `throughput_workers.py`.

Every measurement runs in its own child process (so peak memory is that
work's alone), one after another, on the same inputs; the parent prints a
table and writes JSON. OpenCLIP is installed from PyPI and built with random
weights (its model code is loaded as in tests/convert/references.py).

- training samples/s: median over `--steps` steps after `--warmup` steps,
  Adam-family optimizer, symmetric contrastive loss, same architecture,
  batch, context length (77) and precision on both sides;
- model FLOPs per sample: XLA's cost analysis of the forward pass (JAX),
  times 3 for a training step (backward ≈ 2 × forward);
- ceiling: the same framework's measured matmul GFLOP/s (2048², fp32 and
  bf16); utilisation = achieved training FLOP/s / ceiling;
- peak RSS of the process after training steps at `--memory-batches`;
- inference: image and text embeddings per second (Keras model compiled,
  exported SavedModel's `embed_pixels` as exported by default, with
  TensorFlow's oneDNN kernels on, and exported with `jit_compile=True`;
  OpenCLIP eager under no_grad).
"""

import argparse
import json
import os
import subprocess
import sys
import time

from throughput_workers import CONFIGS, WORKERS

from keras_clip.training.xla_flags import use_low_memory_cpu_schedule


def run_job(job):
    backend = job.get("backend", "torch")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    # TensorFlow's oneDNN kernels and fusions: set for every job, never inherited.
    env["TF_ENABLE_ONEDNN_OPTS"] = "1" if job.get("onednn") else "0"
    use_low_memory_cpu_schedule(env)  # XLA's op order on CPUs, as `keras-clip` sets it
    if job["worker"] == "forward_flops":
        # XLA counts FLOPs of its own kernels only: on a GPU, cuDNN's convolutions
        # are custom calls it leaves out (a ResNet's count falls from 2.09 to 0.76 GFLOP).
        env["JAX_PLATFORMS"] = "cpu"
    started = time.time()
    done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)], env=env,
                          capture_output=True, text=True, timeout=1800)
    label = " ".join(f"{k}={v}" for k, v in job.items() if k not in ("steps", "warmup"))
    if done.returncode != 0:
        print(f"  FAILED {label}: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return {**job, "error": done.stderr[-2000:]}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"  {time.time() - started:5.0f} s  {label}: {result}", file=sys.stderr)
    return {**job, **result}


def torch_bf16_unusable(job, results):
    """Why a bf16 training job on torch is not run (None: it is)."""
    uses_torch = job["worker"] == "open_clip_train" or job.get("backend") == "torch"
    if job.get("precision") != "bfloat16" or not uses_torch or "batch" not in job:
        return None
    ceiling = next((r for r in results if r["worker"] == "matmul_ceiling"
                    and r["framework"] == "torch" and "error" not in r), None)
    if ceiling and ceiling["bfloat16"] < 0.1 * ceiling["float32"]:
        return (f"torch's bf16 matmul runs at {ceiling['bfloat16']:.1f} GFLOP/s here "
                f"(fp32 {ceiling['float32']:.0f}): no bf16 kernels for this CPU")
    return None


def plan(args):
    jobs = []
    if "training" in args.parts:
        for framework in dict.fromkeys(args.backends + ["torch"]):
            jobs.append({"worker": "matmul_ceiling", "framework": framework, "backend": framework})
        for config in args.configs:
            jobs.append({"worker": "forward_flops", "config": config, "backend": "jax"})
        for config in args.configs:
            for precision in args.precisions:
                for batch, steps, warmup in [(args.batch, args.steps, args.warmup)] + [
                        (b, 2, 1) for b in args.memory_batches]:
                    common = {"config": config, "precision": precision, "batch": batch,
                              "steps": steps, "warmup": warmup}
                    if batch != args.batch and precision != "float32":
                        continue
                    jobs.append({"worker": "open_clip_train", **common})
                    if args.open_clip_compile and batch == args.batch:
                        jobs.append({"worker": "open_clip_train", "compile": True, **common})
                    for backend in args.backends:
                        for trim in (True, False):
                            # Ids padded to 77 too, once per backend: what trimming buys.
                            if trim or (config == "vit" and precision == "float32"
                                        and batch == args.batch):
                                jobs.append({"worker": "keras_train", "backend": backend,
                                             "jit": backend != "torch", "trim": trim, **common})
                    if ("tensorflow" in args.backends and precision == "float32"
                            and batch == args.batch):
                        # TensorFlow's graph executor with oneDNN's kernels instead of XLA.
                        jobs.append({"worker": "keras_train", "backend": "tensorflow",
                                     "jit": False, "onednn": True, "trim": True, **common})
    for config in args.configs if "inference" in args.parts else ():
        common = {"config": config, "batch": args.batch, "steps": 10, "warmup": 3}
        jobs.append({"worker": "open_clip_infer", **common})
        for onednn, xla in ((False, False), (True, False), (False, True)):
            if "tensorflow" in args.backends:  # exports need TensorFlow
                jobs.append({"worker": "saved_model_infer", "backend": "tensorflow",
                             "onednn": onednn, "xla": xla, **common})
        for backend in args.backends:
            jobs.append({"worker": "keras_infer", "backend": backend, **common})
    return jobs


def accelerator_plan(args):
    """The jobs for one GPU, most wanted first (a lease may end before the last).

    keras_clip on JAX (XLA), the fastest Keras backend there, against OpenCLIP
    eager with and without bf16 autocast; then memory, inference, Keras on
    torch, OpenCLIP under torch.compile, and a batch large enough to be
    bound by arithmetic rather than by launches.
    """
    steps = {"steps": args.steps, "warmup": args.warmup}
    jobs = [{"worker": "matmul_ceiling", "framework": f, "backend": f} for f in ("jax", "torch")]
    jobs += [{"worker": "forward_flops", "config": c, "backend": "jax"} for c in args.configs]
    keras = {"worker": "keras_train", "backend": "jax", "jit": True, "trim": True}
    for config in args.configs:
        for precision in ("float32", "bfloat16"):
            common = {"config": config, "precision": precision, "batch": args.batch, **steps}
            jobs += [{"worker": "open_clip_train", **common}, {**keras, **common}]
            if precision == "float32":
                jobs.append({**keras, **common, "trim": False})
    for batch in args.memory_batches:
        common = {"config": "vit", "precision": "float32", "batch": batch, "steps": 2,
                  "warmup": 1}
        jobs += [{"worker": "open_clip_train", **common}, {**keras, **common}]
    for config in args.configs:
        common = {"config": config, "batch": args.batch, "steps": 10, "warmup": 3}
        jobs += [{"worker": "open_clip_infer", **common},
                 {"worker": "keras_infer", "backend": "jax", **common}]
    for precision in ("float32", "bfloat16"):
        common = {"config": "vit", "precision": precision, "batch": args.batch, **steps}
        jobs += [{**keras, **common, "backend": "torch", "jit": False},
                 {"worker": "open_clip_train", "compile": True, **common}]
    common = {"config": "vit", "precision": "bfloat16", "batch": args.large_batch, **steps}
    return jobs + [{"worker": "open_clip_train", **common}, {**keras, **common}]


def training_table(results):
    ceilings = {r["framework"]: r for r in results if r["worker"] == "matmul_ceiling"}
    flops = {r["config"]: 3 * r["forward_flops_per_sample"]
             for r in results if r["worker"] == "forward_flops" and "error" not in r}
    rows = []
    train = [r for r in results if r["worker"].endswith("_train") and "samples_per_s" in r]
    for r in train:
        if r["worker"] != "keras_train":
            continue

        def open_clip(compiled):  # OpenCLIP's result for r's work, eager or compiled
            return next((o for o in train if o["worker"] == "open_clip_train"
                         and (o["config"], o["batch"], o["precision"])
                         == (r["config"], r["batch"], r["precision"])
                         and o.get("compile", False) == compiled), None)

        baseline, compiled = open_clip(False), open_clip(True)

        def utilisation(result, framework):
            ceiling = ceilings.get(framework, {}).get(result["precision"])
            if not ceiling or result["config"] not in flops:
                return None
            return flops[result["config"]] * result["samples_per_s"] / 1e9 / ceiling

        rows.append({
            "config": r["config"], "batch": r["batch"], "precision": r["precision"],
            "backend": r["backend"] + ("" if r["trim"] else ", ids padded to 77")
            + (", oneDNN, no XLA" if r.get("onednn") else ""),
            "keras_clip": r["samples_per_s"],
            "open_clip": baseline and baseline["samples_per_s"],
            "ratio": baseline and r["samples_per_s"] / baseline["samples_per_s"],
            "utilisation": utilisation(r, r["backend"]),
            "open_clip_utilisation": baseline and utilisation(baseline, "torch"),
            **({"open_clip_compiled": compiled["samples_per_s"],
                "ratio_to_compiled": r["samples_per_s"] / compiled["samples_per_s"]}
               if compiled else {}),
        })
    return rows


def print_tables(results):
    print("\ntraining: samples/s (utilisation of the framework's matmul ceiling)")
    print("| config | batch | precision | backend | keras_clip | OpenCLIP | ratio |")
    print("|---|---|---|---|---|---|---|")
    for row in training_table(results):
        def cell(value, share):
            return "—" if value is None else f"{value:.1f}" + (
                f" ({share:.0%})" if share is not None else "")
        ratio = "—" if row["ratio"] is None else f"{row['ratio']:.2f}"
        print(f"| {row['config']} | {row['batch']} | {row['precision']} | {row['backend']} | "
              f"{cell(row['keras_clip'], row['utilisation'])} | "
              f"{cell(row['open_clip'], row['open_clip_utilisation'])} | {ratio} |"
              + (f" OpenCLIP torch.compile {row['open_clip_compiled']:.1f}, ratio "
                 f"{row['ratio_to_compiled']:.2f}" if "open_clip_compiled" in row else ""))
    print("\npeak memory (MiB: RSS, and accelerator where used) after training steps, float32")
    for r in results:
        if (r["worker"].endswith("_train") and "samples_per_s" in r
                and r["precision"] == "float32" and r.get("trim", True)):
            name = r.get("backend", "open_clip") if r["worker"] == "keras_train" else "open_clip"
            name += ", oneDNN, no XLA" if r.get("onednn") else ""
            name += ", torch.compile" if r.get("compile") else ""
            device = (f", accelerator {r['peak_device_mib']:.0f}"
                      if "peak_device_mib" in r else "")
            print(f"  {r['config']} batch {r['batch']} {name}: {r['peak_rss_mib']:.0f}{device}")
    print("\ninference, embeddings/s (images, texts)")
    for r in results:
        if r["worker"].endswith("_infer") and "images_per_s" in r:
            name = {"keras_infer": f"keras_clip {r.get('backend')}",
                    "saved_model_infer": "SavedModel embed_pixels, " + (
                        "XLA" if r.get("xla") else "oneDNN " + (
                            "on" if r.get("onednn") else "off")),
                    "open_clip_infer": "OpenCLIP eager"}[r["worker"]]
            print(f"  {r['config']} {name}: {r['images_per_s']:.1f}"
                  + (f", {r['texts_per_s']:.1f}" if "texts_per_s" in r else ""))
    for r in results:
        if r["worker"] in ("matmul_ceiling", "forward_flops") and "error" not in r:
            print(f"  {r['worker']} {r.get('framework', r.get('config'))}: "
                  f"{ {k: v for k, v in r.items() if k not in ('worker', 'backend')} }")
    for r in results:
        if "skipped" in r or "error" in r:
            print(f"  not measured: {r['worker']} {r.get('config')} {r.get('precision')} "
                  f"{r.get('backend', 'open_clip')}: {r.get('skipped') or 'error'}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax", "torch"])
    parser.add_argument("--plan", choices=["cpu", "accelerator"], default="cpu",
                        help="accelerator: the one-GPU job list (JAX backend first; --configs,"
                             " --batch, --steps and --memory-batches apply)")
    parser.add_argument("--precisions", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--large-batch", type=int, default=1024,
                        help="accelerator plan: the batch of its last, arithmetic-bound pair")
    parser.add_argument("--memory-batches", type=int, nargs="*", default=[256])
    parser.add_argument("--parts", nargs="+", default=["training", "inference"],
                        choices=["training", "inference"])
    parser.add_argument("--open-clip-compile", action="store_true",
                        help="also time OpenCLIP under torch.compile (batch --batch only)")
    parser.add_argument("--json", help="write every result here (rewritten after each job)")
    args = parser.parse_args(argv)
    if args.worker:
        job = json.loads(args.worker)
        print(json.dumps(WORKERS[job["worker"]](job)))
        return 0
    results = []
    for job in (accelerator_plan if args.plan == "accelerator" else plan)(args):
        reason = torch_bf16_unusable(job, results)
        results.append({**job, "skipped": reason} if reason else run_job(job))
        if args.json:  # after every job, so a run cut short keeps what it measured
            with open(args.json, "w") as file:
                json.dump({"date": time.strftime("%Y-%m-%d"), "results": results,
                           "training": training_table(results)}, file, indent=1)
    print_tables(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
