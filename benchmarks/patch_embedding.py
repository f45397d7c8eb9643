"""The ViT patch embedding: strided convolution against one matmul of flattened patches.

    python benchmarks/patch_embedding.py   # JAX on this machine's CPU

`PatchEmbedding` computes its non-overlapping convolution as `(B·grid²,
p·p·3) @ (p·p·3, width)`. This compares the two forms under XLA (JAX), on
the benchmark ViT's shapes (224 px, patch 32, width 256, 128 images per
micro-batch, 2 micro-batches): the forward pass, the kernel's gradient,
and that gradient inside a `lax.scan` over the micro-batches, as
cached-gradient accumulation runs it. Seconds per call, the median of 3
after one compiled warm-up; the two forms agree to float32 rounding
(printed).
"""

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np


def convolution(kernel, images, patch):
    out = jax.lax.conv_general_dilated(images, kernel, (patch, patch), "VALID",
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return out.reshape(images.shape[0], -1, kernel.shape[-1])


def matmul(kernel, images, patch):
    batch, size = images.shape[0], images.shape[1]
    grid = size // patch
    patches = images.reshape(batch, grid, patch, grid, patch, 3).transpose(0, 1, 3, 2, 4, 5)
    patches = patches.reshape(batch, grid * grid, patch * patch * 3)
    return patches @ kernel.reshape(patch * patch * 3, kernel.shape[-1])


def seconds(function, *arguments):
    jax.block_until_ready(function(*arguments))  # compiles
    times = []
    for _ in range(3):
        start = time.perf_counter()
        jax.block_until_ready(function(*arguments))
        times.append(time.perf_counter() - start)
    return sorted(times)[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--patch", type=int, default=32)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--micro-batch", type=int, default=128)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.normal(size=(2, args.micro_batch, args.image_size,
                                          args.image_size, 3)).astype("float32"))
    kernel = jnp.asarray(rng.normal(size=(args.patch, args.patch, 3, args.width))
                         .astype("float32") * 0.02)
    agree = float(jnp.abs(convolution(kernel, images[0], args.patch)
                          - matmul(kernel, images[0], args.patch)).max())
    rows = {}
    print("| form | forward | kernel gradient | kernel gradient in lax.scan |")
    print("|---|---|---|---|")
    for name, form in (("convolution", convolution), ("matmul", matmul)):
        def loss(w, x, form=form):
            return jnp.sum(form(w, x, args.patch) ** 2)

        forward = jax.jit(lambda x, form=form: [form(kernel, part, args.patch) for part in x])
        gradient = jax.jit(lambda x, loss=loss: [jax.grad(loss)(kernel, part) for part in x])
        scanned = jax.jit(lambda x, loss=loss: jax.lax.scan(
            lambda total, part: (total + jax.grad(loss)(kernel, part), None),
            jnp.zeros_like(kernel), x)[0])
        rows[name] = [seconds(f, images) for f in (forward, gradient, scanned)]
        print(f"| {name} | " + " | ".join(f"{s:.3f} s" for s in rows[name]) + " |")
    ratios = [c / m for c, m in zip(rows["convolution"], rows["matmul"])]
    print("convolution / matmul: " + ", ".join(f"{r:.1f}×" for r in ratios)
          + f"; largest difference {agree:.1e}")
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"seconds": rows, "ratios": ratios, "largest_difference": agree}, file)


if __name__ == "__main__":
    main()
