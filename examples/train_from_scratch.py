"""Train a CLIP from scratch with plain `model.fit` over keras_clip TFRecords.

The way a Keras user writes it: a preset, the paper's optimiser (AdamW with
decay on weights only, warm-up then cosine), the tf.data pipeline, `fit`
with no `loss=`. Make the shards with `keras-clip make-tfrecords`; or run
`--smoke` to train a few steps on synthetic shards written to a temp dir.

    python examples/train_from_scratch.py --data 'data/train-*.tfrecord' \
        --preset ViT-B/32 --batch-size 256 --steps 10000
    python examples/train_from_scratch.py --smoke          # a minute on a CPU

Several GPUs: the same script under `tf.distribute.MirroredStrategy().scope()`
with `make_distributed_dataset`; `keras-clip train` does all of that for you.
"""

import argparse
import tempfile

from keras_clip import CLIPModel
from keras_clip.data.clip_tokenizer import CLIPTokenizer
from keras_clip.data.dataset import make_dataset
from keras_clip.data.synthetic_pairs import write_synthetic_tfrecords
from keras_clip.training.clip_adamw import CLIPAdamW
from keras_clip.training.recipe import learning_rate_schedule
from keras_clip.training.xla_flags import use_low_memory_cpu_schedule


def main():
    use_low_memory_cpu_schedule()  # less memory for XLA on CPUs; before any compile
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="glob of training shards")
    parser.add_argument("--preset", default="tiny-vit")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--output", default="clip_from_scratch.keras")
    parser.add_argument("--smoke", action="store_true",
                        help="a few steps on synthetic shards, tiny-vit, no tokenizer")
    args = parser.parse_args()

    tokenizer = None
    if args.smoke:
        args.data = write_synthetic_tfrecords(tempfile.mkdtemp(), count=64)
        args.preset, args.batch_size, args.steps = "tiny-vit", 16, 8
    model = CLIPModel.from_preset(args.preset)
    if not args.smoke:
        tokenizer = CLIPTokenizer.from_openai(context_length=model.context_length)
    dataset = make_dataset(args.data, preprocessing=model.preprocessing,
                           batch_size=args.batch_size, training=True,
                           tokenizer=tokenizer, repeat=True, seed=0,
                           trim_token_ids=model.text_encoder.accepts_trimmed_token_ids)
    warmup = max(1, min(2000, args.steps // 10))
    model.compile(optimizer=CLIPAdamW(
        learning_rate=learning_rate_schedule(args.learning_rate, warmup, args.steps),
        weight_decay=0.2, head_variables=model.head_variables,
        **model.image_encoder.optimizer_defaults))
    steps_per_epoch = min(args.steps, 500)
    model.fit(dataset, epochs=max(1, args.steps // steps_per_epoch),
              steps_per_epoch=steps_per_epoch)
    model.save(args.output)
    print(f"saved {args.output}; input counts (read ahead included): "
          f"{dataset.stats.as_dict()}")


if __name__ == "__main__":
    main()
