"""FLIP's patch dropout: training samples/s at each rate beside rate 0, one run.

    PYTHONPATH=. python benchmarks/patch_dropout.py --json out.json

The model is the benchmark ViT (`throughput_workers.CONFIGS["vit"]`: 224 px,
patch 32, 4 layers of width 256 in each tower, context 77), random weights,
AdamW, float32, the same random batch for every rate. Each (backend, rate)
runs in its own child process: `train_on_batch` samples/s, median over
`--steps` steps after `--warmup`. `--trim` cuts the captions to the longest
(as `make_dataset` does), so the text tower's share of the step is what a
real run has rather than 77 tokens. `--patch-size 16` makes the image
tower read 196 patches instead of 49 (the geometry of FLIP's ViT-B/16 and
L/16, where the image tower is most of the step).

Dropping patches is doing less work: at rate r the image tower's blocks see
1 + ⌊49·(1 − r)⌋ tokens instead of 50; the patchify matmul, the text tower
and the loss are unchanged, which bounds the speed-up below 1 / (1 − r).

Each child also checks that evaluation is untouched: the image embeddings
of `predict` (inference) with the rate set equal those at rate 0, the same
weights.
"""

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def worker(job):
    import keras
    import numpy as np
    from throughput_workers import CONFIGS, batch_arrays, keras_model, timed

    keras.utils.set_random_seed(0)
    config = CONFIGS["vit"]
    vision = {**config["vision_cfg"], "patch_size": job.get("patch_size", 32)}
    config = {**config, "vision_cfg": vision}
    model = keras_model(config, "float32")
    images, token_ids = batch_arrays(config, job["batch"])
    if job["trim"]:
        token_ids = token_ids[:, : (np.nonzero(token_ids)[1].max() + 1 + 15) // 16 * 16]
    batch = {"images": keras.ops.convert_to_tensor(images),
             "token_ids": keras.ops.convert_to_tensor(token_ids)}
    probe = {key: value[:16] for key, value in batch.items()}
    before = model.predict(probe, verbose=0)["image_embeddings"]
    model.image_encoder.patch_dropout = job["rate"]
    after = model.predict(probe, verbose=0)["image_embeddings"]
    model.compile(optimizer=keras.optimizers.AdamW(1e-5))
    seconds = timed(lambda: model.train_on_batch(batch), job["steps"], job["warmup"])
    return {"samples_per_s": job["batch"] / seconds,
            "eval_max_difference": float(np.max(np.abs(after - before))),
            "text_tokens": int(token_ids.shape[1])}


def run(job):
    env = {**os.environ, "KERAS_BACKEND": job["backend"], "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.pathsep.join([ROOT, os.path.join(ROOT, "benchmarks")])}
    from keras_clip.training.xla_flags import use_low_memory_cpu_schedule

    use_low_memory_cpu_schedule(env)  # as `keras-clip train` sets it
    started = time.time()
    done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)], env=env,
                          capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        print(f"  FAILED {job}: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return {**job, "error": done.stderr[-2000:]}
    result = {**job, **json.loads(done.stdout.strip().splitlines()[-1])}
    print(f"  {time.time() - started:5.0f} s  {result}", file=sys.stderr)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--backends", nargs="+", default=["jax", "tensorflow", "torch"])
    parser.add_argument("--rates", nargs="+", type=float, default=[0.5, 0.75])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--trim", action="store_true", help="captions cut to the longest")
    parser.add_argument("--patch-size", type=int, default=32, help="32: 49 patches; 16: 196")
    parser.add_argument("--json", help="write every result here")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    results = []
    for backend in args.backends:
        for rate in [0.0, *args.rates]:
            results.append(run({"backend": backend, "rate": rate, "batch": args.batch,
                                "steps": args.steps, "warmup": args.warmup,
                                "trim": args.trim, "patch_size": args.patch_size}))
            if args.json:
                with open(args.json, "w") as file:
                    json.dump(results, file, indent=1)
    print("\n| backend | patch_dropout | samples/s | vs rate 0 | eval embeddings max diff |"
          "\n|---|---|---|---|---|")
    for row in results:
        base = next(r for r in results if r["backend"] == row["backend"] and r["rate"] == 0)
        if "error" in row or "error" in base:
            print(f"| {row['backend']} | {row['rate']} | failed | | |")
            continue
        print(f"| {row['backend']} | {row['rate']} | {row['samples_per_s']:.1f} | "
              f"{row['samples_per_s'] / base['samples_per_s']:.2f}× | "
              f"{row['eval_max_difference']:.1e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
