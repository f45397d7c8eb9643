"""The ConvNeXt tower beside the ViT of similar FLOPs, training on this machine.

    PYTHONPATH=. python benchmarks/convnext_tower.py --json convnext.json

`convnext-tiny` (ConvNeXt-T, 4.5 GFLOPs at 224 px in Liu et al., 2022)
against `ViT-B/32` (the CLIP paper's ViT of similar image FLOPs), both
with ViT-B/32's text tower, random weights, fp32, batch `--batch` of
224-pixel images and captions of 8–30 tokens padded to 77. Each model
trains in its own child process with `model.fit` and CLIPAdamW, as
`keras-clip train` does; reported: image-tower forward FLOPs per sample
(XLA's count, JAX backend), median training samples/s over `--steps` steps
after `--warmup`, and the process's peak RSS. Same work on both sides but
the image tower.
"""

import argparse
import json
import os
import resource
import subprocess
import sys

PRESETS = ("convnext-tiny", "ViT-B/32")


def worker(preset, batch, steps, warmup):
    import keras
    import numpy as np

    from benchmarks.throughput_workers import CONFIGS, batch_arrays, timed
    from keras_clip import CLIPModel
    from keras_clip.training.clip_adamw import CLIPAdamW

    model = CLIPModel.from_preset(preset)
    model.compile(optimizer=CLIPAdamW(1e-5, head_variables=model.head_variables))
    images, token_ids = batch_arrays(CONFIGS["vit"], batch)
    data = {"images": images, "token_ids": token_ids}
    model.train_on_batch(data)  # builds the optimizer, compiles the step
    seconds = timed(lambda: model.train_on_batch(data), steps, warmup)
    result = {"samples_per_s": batch / seconds,
              "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
              "image_tower_parameters": int(sum(np.prod(v.shape)
                                                for v in model.image_encoder.weights))}
    if keras.backend.backend() == "jax":
        import jax

        tower = model.image_encoder

        def forward(trainable, non_trainable, x):
            return tower.stateless_call(trainable, non_trainable, x)[0]

        variables = ([v.value for v in tower.trainable_variables],
                     [v.value for v in tower.non_trainable_variables])
        analysis = jax.jit(forward).lower(*variables, images[:1]).compile().cost_analysis()
        analysis = analysis[0] if isinstance(analysis, list) else analysis
        result["image_gflops_per_sample"] = analysis["flops"] / 1e9
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="jax", choices=("jax", "tensorflow", "torch"))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.batch, args.steps, args.warmup)))
        return
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "KERAS_BACKEND": args.backend, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": root}
    results = {}
    for preset in PRESETS:
        done = subprocess.run(
            [sys.executable, __file__, "--worker", preset, "--batch", str(args.batch),
             "--steps", str(args.steps), "--warmup", str(args.warmup)],
            env=env, capture_output=True, text=True, check=False)
        if done.returncode:
            sys.exit(f"{preset} failed:\n{done.stderr[-3000:]}")
        results[preset] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{preset:14s} {json.dumps(results[preset])}", flush=True)
    ratio = results["convnext-tiny"]["samples_per_s"] / results["ViT-B/32"]["samples_per_s"]
    print(f"convnext-tiny / ViT-B/32 training samples/s ({args.backend}, batch "
          f"{args.batch}): {ratio:.2f}")
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"backend": args.backend, "batch": args.batch, "results": results,
                       "ratio": ratio}, file, indent=2)


if __name__ == "__main__":
    main()
