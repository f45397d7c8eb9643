"""Fine-tune a CLIP on a Colab TPU: JAX backend, DataParallel, tf.data on the host.

Colab TPU runtimes ship JAX (not TensorFlow's TPU runtime): Keras runs the
model on JAX across all TPU cores with `keras.distribution.DataParallel`,
while TensorFlow (CPU) only feeds it. The global batch is sharded over the
cores and the jitted step sees all of it, so the contrastive loss uses every
example of the batch as a negative. `keras-clip train --set
distribution=data_parallel` does the same with checkpoints and resume.

In a Colab cell:
    !pip install keras-clip
    !KERAS_BACKEND=jax python examples/finetune_colab_tpu.py \
        --start my_clip.keras --data 'gs://bucket/train-*.tfrecord'
Here (CPU, two fake devices):
    XLA_FLAGS=--xla_force_host_platform_device_count=2 KERAS_BACKEND=jax \
        python examples/finetune_colab_tpu.py --smoke
"""

import argparse
import os
import tempfile

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import keras  # noqa: E402

import keras_clip  # noqa: E402
from keras_clip import CLIPModel  # noqa: E402
from keras_clip.data.dataset import make_dataset  # noqa: E402
from keras_clip.data.synthetic_pairs import write_synthetic_tfrecords  # noqa: E402
from keras_clip.training import fine_tuning  # noqa: E402
from keras_clip.training.clip_adamw import CLIPAdamW  # noqa: E402
from keras_clip.training.recipe import learning_rate_schedule  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", help="a .keras CLIP to fine-tune")
    parser.add_argument("--data", help="glob of training shards")
    parser.add_argument("--batch-size", type=int, default=256, help="global batch")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--learning-rate", type=float, default=1e-5)
    parser.add_argument("--wise-ft-alpha", type=float, default=0.5)
    parser.add_argument("--output", default="clip_finetuned.keras")
    parser.add_argument("--smoke", action="store_true",
                        help="a few steps of tiny-vit on synthetic shards")
    args = parser.parse_args()

    devices = jax.devices()
    print(f"{len(devices)} {devices[0].platform} device(s)")
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    if args.smoke:
        args.data = write_synthetic_tfrecords(tempfile.mkdtemp(), count=64)
        args.start = os.path.join(tempfile.mkdtemp(), "start.keras")
        CLIPModel.from_preset("tiny-vit").save(args.start)
        args.batch_size, args.steps = 8 * len(devices), 6
    start = keras_clip.load_model(args.start, compile=False)
    model = keras_clip.load_model(args.start, compile=False)
    # Towers learn 10x slower than the projections; the image tower's
    # first blocks stay frozen.
    blocks = fine_tuning.residual_blocks(model.image_encoder)
    fine_tuning.lock_tower(model.image_encoder, unlocked_blocks=max(1, len(blocks) // 2))
    model.compile(optimizer=CLIPAdamW(
        learning_rate=learning_rate_schedule(args.learning_rate, args.steps // 10 or 1,
                                             args.steps),
        weight_decay=0.1, tower_learning_rate_scale=0.1,
        head_variables=model.head_variables))
    dataset = make_dataset(args.data, preprocessing=model.preprocessing,
                           batch_size=args.batch_size, training=True, repeat=True,
                           tokenizer=None, seed=0)
    model.fit(dataset, epochs=1, steps_per_epoch=args.steps)
    # WiSE-FT: keep part of the starting model's zero-shot robustness.
    fine_tuning.wise_ft(start, model, args.wise_ft_alpha).save(args.output)
    print(f"saved {args.output} (WiSE-FT alpha {args.wise_ft_alpha})")


if __name__ == "__main__":
    main()
