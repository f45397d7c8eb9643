"""The `keras-clip` command. It parses arguments, then calls the package.

The Keras backend is chosen by `KERAS_BACKEND` (TensorFlow by default).
"""

import argparse
import os
import sys
import zipfile

from keras_clip.demo import run_demo
from keras_clip.training.xla_flags import use_low_memory_cpu_schedule

DEMO_EXAMPLE = """example:
  keras-clip demo                      # TensorFlow backend, about 3 minutes on 2 cores
  KERAS_BACKEND=jax keras-clip demo --output-dir /tmp/demo
"""


def _add_command(subparsers, name, example, **texts):
    """A subcommand whose --help ends with its example (kept as written)."""
    parser = subparsers.add_parser(
        name, epilog=example, formatter_class=argparse.RawDescriptionHelpFormatter, **texts
    )
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error")
    return parser


def _at_least(minimum, kind=int):
    """An argparse type: a number of `kind` that is at least `minimum`."""

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not value >= minimum:  # also refuses NaN
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {text}")
        return value

    return parse


def _positive_float(text):
    value = _at_least(0.0, float)(text)
    if value == 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _demo_parser(subparsers):
    parser = _add_command(
        subparsers, "demo", DEMO_EXAMPLE,
        help="generate the built-in shapes dataset, train a tiny CLIP, evaluate it",
        description=(
            "Draws a dataset of coloured shapes with captions (nothing to "
            "download), writes it as TFRecords, trains a tiny CLIP with "
            "keras-clip's trainer, and reports zero-shot accuracy on "
            "colour-shape combinations never seen in training and retrieval "
            "recall, next to chance; then answers a text->image query."
        ),
    )
    parser.add_argument("--output-dir", default="keras_clip_demo")
    parser.add_argument("--train-pairs", type=_at_least(1), default=4000)
    parser.add_argument("--steps", type=_at_least(1), default=800, help="training steps")
    parser.add_argument("--batch-size", type=_at_least(1), default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG pictures")
    parser.add_argument("--export-dir", default="saved_models/demo",
                        help="TF Serving directory for the trained model ('' to skip)")
    return parser


MAKE_TFRECORDS_EXAMPLE = """examples:
  keras-clip make-tfrecords --table captions.csv --output data/train
  keras-clip make-tfrecords --webdataset 'shards/*.tar' --output data/train \\
      --shard-size-mb 200 --workers 8 --tokenize openai
"""


def _make_tfrecords_parser(subparsers):
    parser = _add_command(
        subparsers, "make-tfrecords", MAKE_TFRECORDS_EXAMPLE,
        help="write image–caption pairs as sharded TFRecords",
        description=(
            "Reads pairs from a CSV/TSV/JSONL table (columns filepath, caption) "
            "or from WebDataset tar shards (KEY.jpg + KEY.txt), checks and "
            "cleans them, and writes OUTPUT-NNNNN.tfrecord shards with a summary "
            "of what was written and why anything was skipped."
        ),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--table", help="CSV, TSV or JSONL with filepath,caption")
    source.add_argument("--webdataset", help="glob of WebDataset .tar shards")
    parser.add_argument("--images", help="folder the table's paths are relative to "
                        "(default: the table's folder)")
    parser.add_argument("--output", required=True, help="path prefix of the shards")
    parser.add_argument("--shard-size-mb", type=_positive_float, default=100)
    parser.add_argument("--workers", type=_at_least(1), default=4)
    parser.add_argument("--max-shorter-side", type=_at_least(0), default=512,
                        help="downscale larger images to this shorter side (0: never)")
    parser.add_argument("--tokenize", metavar="MERGES",
                        help="also store token ids: 'openai' (merges file from an "
                        "installed package) or the path of a merges file")
    parser.add_argument("--context-length", type=_at_least(2), default=77)
    return parser


def _make_tfrecords(args):
    import glob

    from keras_clip.data import caption_sources
    from keras_clip.data.clip_tokenizer import CLIPTokenizer
    from keras_clip.data.tfrecord_writer import write_tfrecords

    if args.table:
        if not os.path.isfile(args.table):
            raise FileNotFoundError(f"No caption table at {args.table!r}.")
        pairs = caption_sources.read_caption_table(args.table, args.images)
    else:
        tars = sorted(path for path in glob.glob(args.webdataset) if os.path.isfile(path))
        if not tars:
            raise FileNotFoundError(f"No tar shards match {args.webdataset!r}.")
        pairs = caption_sources.read_webdataset(tars)
    tokenizer = None
    if args.tokenize:
        path = None if args.tokenize == "openai" else args.tokenize
        tokenizer = CLIPTokenizer.from_openai(path, context_length=args.context_length)
    summary = write_tfrecords(
        pairs, args.output, shard_size_mb=args.shard_size_mb,
        num_workers=args.workers, max_shorter_side=args.max_shorter_side,
        tokenizer=tokenizer,
    )
    return 0 if summary.written else 1


TRAIN_EXAMPLE = """examples:
  keras-clip train --config configs/vit_b32.json
  keras-clip train --set train_data='data/train-*.tfrecord' --set preset=tiny-vit \\
      --set steps=1000 --set warmup_steps=100 --set batch_size=32
  keras-clip train --config cfg.json --set precision=mixed_bfloat16 --set remat=true

Keys and defaults: see keras_clip.training.TrainConfig. An interrupted run
started again with the same output_dir continues from its last checkpoint.
"""


def _train_parser(subparsers):
    parser = _add_command(
        subparsers, "train", TRAIN_EXAMPLE,
        help="train or fine-tune a CLIP model from TFRecords (resumable)",
        description=(
            "Builds the distribution strategy, the tf.data pipeline, the model "
            "and the paper's AdamW recipe from a JSON config, then runs "
            "model.fit with checkpoints, TensorBoard logs and a final "
            "OUTPUT_DIR/model.keras."
        ),
    )
    parser.add_argument("--config", help="a JSON file of TrainConfig keys")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one key (JSON value, or a plain string)")
    return parser


def _train(args):
    from keras_clip.training import load_config, train

    config = load_config(args.config, args.set)
    config.check_data()
    result = train(config)
    print(f"Trained {result.steps} steps ({result.distribution}, {result.replicas} "
          f"replica(s)); model saved to {result.model_path}")
    return 0


EVALUATE_EXAMPLE = """examples:
  keras-clip evaluate --model runs/b32/model.keras --folder imagenet_val/ --json out.json
  keras-clip evaluate --model keras_clip_demo/run/model.keras \\
      --vocabulary keras_clip_demo/tokenizer/vocab.json \\
      --merges keras_clip_demo/tokenizer/merges.txt --captions 'val-*.tfrecord'

--folder holds one sub-folder per class (folder names are the class names,
'_' read as a space); --captions are TFRecords from make-tfrecords.
"""


def _model_and_tokenizer_arguments(parser):
    """What `evaluate` and `export` both read: the model, its tokenizer, prompts."""
    parser.add_argument(
        "--model", required=True,
        help="a .keras CLIP model, or a directory from `keras-clip convert`")
    parser.add_argument("--templates", help="text file, one prompt template with {} per line")
    parser.add_argument("--vocabulary", help="tokenizer vocab.json (with --merges)")
    parser.add_argument("--merges", help="tokenizer merges.txt (default: OpenAI's)")


def _evaluate_parser(subparsers):
    parser = _add_command(
        subparsers, "evaluate", EVALUATE_EXAMPLE,
        help="zero-shot accuracy on a class folder, retrieval recall on caption shards",
        description="Evaluates a saved CLIP model; prints a table and can write JSON.",
    )
    parser.add_argument("--folder", help="class folder for zero-shot classification")
    parser.add_argument("--captions", help="glob of caption TFRecords for retrieval")
    _model_and_tokenizer_arguments(parser)
    parser.add_argument("--batch-size", type=_at_least(1), default=64)
    parser.add_argument("--json", help="write the report here")
    return parser


def _evaluate(args):
    import json

    from keras_clip.evaluation.evaluate import evaluate
    from keras_clip.evaluation.zero_shot import TEMPLATES

    model, tokenizer = _load_model_and_tokenizer(args)
    templates = _lines(args.templates) if args.templates else TEMPLATES
    report = evaluate(model, tokenizer, folder=args.folder, captions=args.captions,
                      templates=templates, batch_size=args.batch_size)
    for section, values in report.items():
        print(section)
        for key, value in values.items():
            if isinstance(value, float):
                print(f"  {key:28s} {value:.4f}")
            elif key not in ("confusion_matrix", "classes"):
                print(f"  {key:28s} {value}")
    if args.json:
        with open(args.json, "w") as file:
            json.dump(report, file, indent=2, ensure_ascii=False)
    return 0


EXPORT_EXAMPLE = """examples:
  keras-clip export --model runs/b32/model.keras --output saved_models/clip
  keras-clip export --model keras_clip_demo/run/model.keras --output saved_models/demo \\
      --vocabulary keras_clip_demo/tokenizer/vocab.json \\
      --merges keras_clip_demo/tokenizer/merges.txt --classes classes.txt

Writes OUTPUT/<next version>/ for TF Serving (never overwrites a version):
  docker run -p 8501:8501 -v "$PWD/saved_models/clip:/models/clip" \\
      -e MODEL_NAME=clip tensorflow/serving
"""


def _export_parser(subparsers):
    parser = _add_command(
        subparsers, "export", EXPORT_EXAMPLE,
        help="write a TF Serving SavedModel that takes image bytes and raw text",
        description="Exports a saved CLIP model with preprocessing and tokenizer inside.",
    )
    parser.add_argument("--output", required=True, help="TF Serving model directory")
    parser.add_argument("--version", type=_at_least(0),
                        help="default: the next free integer")
    parser.add_argument("--classes", help="text file, one class name per line (adds classify)")
    parser.add_argument("--xla", action="store_true",
                        help="compile the towers with XLA: faster on CPUs; TF Serving then "
                             "needs --xla_cpu_compilation_enabled=true (CPU builds only)")
    _model_and_tokenizer_arguments(parser)
    return parser


def _lines(path):
    with open(path, encoding="utf-8") as file:
        return [line.strip() for line in file if line.strip()]


def _load_model_and_tokenizer(args):
    from keras_clip.data.clip_tokenizer import CLIPTokenizer
    from keras_clip.models.loading import load_model

    model = load_model(args.model, compile=False)
    if os.path.isdir(args.model) and not args.vocabulary and not args.merges:
        return model, CLIPTokenizer.from_preset(args.model)  # it holds its tokenizer
    length = model.context_length
    if args.vocabulary:
        return model, CLIPTokenizer.from_hf(args.vocabulary, args.merges, context_length=length)
    return model, CLIPTokenizer.from_openai(args.merges, context_length=length)


def _export(args):
    from keras_clip.evaluation.zero_shot import TEMPLATES
    from keras_clip.export import export_saved_model

    model, tokenizer = _load_model_and_tokenizer(args)
    path = export_saved_model(
        model, tokenizer, args.output, version=args.version,
        class_names=_lines(args.classes) if args.classes else None,
        templates=_lines(args.templates) if args.templates else TEMPLATES,
        jit_compile=args.xla)
    print(f"exported {path}")
    return 0


CONVERT_EXAMPLE = """example:
  keras-clip convert --from openai ViT-B-32.pt --preset ViT-B/32 --out clip-b32
  keras-clip convert --from open_clip open_clip_model.safetensors \\
      --config open_clip/model_configs/ViT-B-32.json --out b32-laion
  keras-clip convert --from hf ./clip-vit-base-patch32 --out b32-hf --image-size 336

--out ending in .keras writes one model file; otherwise a directory that
CLIPModel.from_preset and CLIPTokenizer.from_preset load (model.keras,
vocab.json, merges.txt, preprocessing.json).
"""


def _convert_parser(subparsers):
    parser = _add_command(
        subparsers, "convert", CONVERT_EXAMPLE,
        help="convert OpenAI, OpenCLIP or Hugging Face CLIP weights",
        description="Loads a CLIP checkpoint (never downloads) into a keras_clip model.",
    )
    parser.add_argument("source", help="checkpoint file, or a Hugging Face model directory")
    parser.add_argument("--from", dest="source_format", required=True,
                        choices=("openai", "open_clip", "hf"))
    parser.add_argument("--out", required=True, help="a .keras file or a directory")
    parser.add_argument("--preset", help="architecture of a state dict, e.g. ViT-B/32")
    parser.add_argument("--config", help="an OpenCLIP model config JSON (instead of --preset)")
    parser.add_argument("--activation", choices=("quick_gelu", "gelu"),
                        help="with --preset: quick_gelu for OpenAI weights and "
                             "OpenCLIP '-quickgelu' models, gelu for other OpenCLIP ones")
    parser.add_argument("--image-size", type=_at_least(1),
                        help="build the image tower at this size (positions interpolated)")
    parser.add_argument("--bpe", help="OpenAI's bpe_simple_vocab_16e6.txt.gz, if no "
                                      "installed package ships it")


def _convert(args):
    from keras_clip.convert import convert_checkpoint, save_converted

    converted = convert_checkpoint(
        args.source_format, args.source, preset=args.preset, config=args.config,
        activation=args.activation, image_size=args.image_size,
        vocabulary_path=args.bpe)
    path = save_converted(*converted, args.out)
    print(f"converted {args.source} → {path}")
    return 0


def _demo(args):
    run_demo(output_dir=args.output_dir, train_pairs=args.train_pairs,
             steps=args.steps, batch_size=args.batch_size, seed=args.seed,
             plots=not args.no_plots, export_dir=args.export_dir)
    return 0


COMMANDS = {
    "demo": (_demo_parser, _demo),
    "make-tfrecords": (_make_tfrecords_parser, _make_tfrecords),
    "train": (_train_parser, _train),
    "evaluate": (_evaluate_parser, _evaluate),
    "export": (_export_parser, _export),
    "convert": (_convert_parser, _convert),
}


def _user_errors():
    """Exceptions that report a user's mistake or bad input, not a bug."""
    errors = [ValueError, OSError, EOFError, zipfile.BadZipFile]
    tensorflow = sys.modules.get("tensorflow")
    if tensorflow is not None:  # bad data met inside a TensorFlow op
        errors.append(tensorflow.errors.OpError)
    return tuple(errors)


def _message(error):
    text = getattr(error, "message", None) or str(error) or type(error).__name__
    lines = [line for line in text.strip().splitlines() if line.strip()]
    # TensorFlow appends the graph's op trace: the first lines say what went wrong.
    return " ".join(lines[:1] if "tensorflow" in type(error).__module__ else lines)


def main(argv=None):
    """Runs `keras-clip ARGV`; returns the exit status.

    A user's mistake or bad input (a missing file, a bad value, a damaged
    file) prints one line `keras-clip COMMAND: what is wrong` and returns 2;
    `--debug` shows the traceback instead.
    """
    use_low_memory_cpu_schedule()  # before this process's first XLA compile
    parser = argparse.ArgumentParser(
        prog="keras-clip",
        description="Train, evaluate and serve CLIP models with Keras 3.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for add_parser, _ in COMMANDS.values():
        add_parser(subparsers)
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command][1](args)
    except KeyboardInterrupt:
        print(f"keras-clip {args.command}: interrupted", file=sys.stderr)
        return 130
    except _user_errors() as error:
        if args.debug:
            raise
        print(f"keras-clip {args.command}: {_message(error)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
