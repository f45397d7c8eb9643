"""The `keras-clip` command. It parses arguments, then calls the package.

The Keras backend is chosen by `KERAS_BACKEND` (TensorFlow by default).
"""

import argparse
import sys

from keras_clip.demo import run_demo

DEMO_EXAMPLE = """example:
  keras-clip demo                      # tiny ViT CLIP, TensorFlow backend
  KERAS_BACKEND=jax keras-clip demo --preset tiny-resnet --steps 100
"""


def _demo_parser(subparsers):
    parser = subparsers.add_parser(
        "demo",
        help="train a tiny CLIP on built-in synthetic pairs and show the loss fall",
        description=(
            "Trains a tiny CLIP preset with model.fit on random image–caption "
            "pairs generated in memory (nothing to download) and reports the "
            "loss and in-batch retrieval accuracy before and after. The pairs "
            "carry no meaning: this shows the training machinery working, not "
            "zero-shot transfer."
        ),
        epilog=DEMO_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--preset", default="tiny-vit", help="a tiny-* preset")
    parser.add_argument("--steps", type=int, default=60, help="training steps")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--pairs", type=int, default=64, help="synthetic pairs")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument(
        "--output", default="keras_clip_demo/model.keras",
        help="where the trained model is saved",
    )
    return parser


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="keras-clip",
        description="Train, evaluate and serve CLIP models with Keras 3.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    _demo_parser(subparsers)
    args = parser.parse_args(argv)
    if args.command == "demo":
        run_demo(
            preset=args.preset,
            steps=args.steps,
            batch_size=args.batch_size,
            num_pairs=args.pairs,
            learning_rate=args.learning_rate,
            output=args.output,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
