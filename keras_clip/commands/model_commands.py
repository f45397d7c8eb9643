"""`keras-clip train`, `evaluate`, `export` and `convert`."""

from keras_clip import files
from keras_clip.commands.arguments import (
    add_command,
    add_tokenizer_argument,
    at_least,
    lines,
)
from keras_clip.commands.quiet_tensorflow import start_tensorflow
from keras_clip.training.config import describe_keys

TRAIN_EXAMPLE = """examples:
  keras-clip train --set train_data='data/train-*.tfrecord' --set steps=300 --set recipe=small
  keras-clip train --set train_data='data/train-*.tfrecord' --set preset=ViT-B/32 \\
      --set image_size=160 --set batch_size=256 --set steps=10000 --set output_dir=runs/b32-160
  keras-clip train --config runs/clip/config.json --set output_dir=runs/again --set seed=1

An interrupted run started again with the same output_dir continues from its
last checkpoint. OUTPUT_DIR then holds model.keras, the tokenizer and
config.json (the keys as given, and under "used" every key as the run used
it; --config reads the keys as given): pass OUTPUT_DIR as --model to
evaluate and export, or as preset to fine-tune from it.

config keys (--set KEY=VALUE; JSON values, or plain strings) and defaults:
"""


def train_parser(subparsers):
    parser = add_command(
        subparsers, "train", TRAIN_EXAMPLE + describe_keys(),
        help="train or fine-tune a CLIP model from TFRecords (resumable)",
        description=(
            "Builds the distribution strategy, the tf.data pipeline, the model "
            "and the paper's AdamW recipe from a JSON config, then runs "
            "model.fit with checkpoints, TensorBoard logs and a final "
            "OUTPUT_DIR/model.keras."
        ),
    )
    parser.add_argument("--config", help="a JSON file of config keys")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one key (JSON value, or a plain string)")
    add_tokenizer_argument(parser, "openai (the same as --set tokenizer=SPEC)")


def train(args):
    from keras_clip.training import load_config
    from keras_clip.training import train as run_training

    overrides = list(args.set)
    if args.tokenizer is not None:
        overrides.append(f"tokenizer={args.tokenizer}")
    config = load_config(args.config, overrides)  # a bad key is reported at once
    start_tensorflow()
    config.check_data()
    result = run_training(config)
    wise_ft = f"; WiSE-FT blend in {result.wise_ft_path}" if result.wise_ft_path else ""
    if not result.steps_this_run:
        print(f"Nothing to train: {config.output_dir} holds the finished {result.steps}-step "
              f"run; model at {result.model_path}{wise_ft}")
        return 0
    print(f"Trained {result.steps} steps ({result.distribution}, {result.replicas} "
          f"replica(s)); model saved to {result.model_path}{wise_ft}")
    return 0


EVALUATE_EXAMPLE = """examples:
  keras-clip evaluate --model runs/clip --folder photos/ --json report.json
  keras-clip evaluate --model keras_clip_demo/run/model.keras \\
      --tokenizer keras_clip_demo/tokenizer --captions 'val-*.tfrecord'

--folder holds one sub-folder per class (folder names are the class names,
'_' read as a space); --captions are TFRecords from make-tfrecords.
"""


def _add_model_arguments(parser):
    """What `evaluate` and `export` both read: the model, its tokenizer, prompts."""
    parser.add_argument(
        "--model", required=True,
        help="a train output_dir, a .keras file, or a directory from `keras-clip convert`")
    add_tokenizer_argument(parser, "the one saved with the model, else openai")
    parser.add_argument("--templates", help="text file, one prompt template with {} per line")


def evaluate_parser(subparsers):
    parser = add_command(
        subparsers, "evaluate", EVALUATE_EXAMPLE,
        help="zero-shot accuracy on a class folder, retrieval recall on caption shards",
        description="Evaluates a saved CLIP model; prints a table and can write JSON.",
    )
    parser.add_argument("--folder", help="class folder for zero-shot classification")
    parser.add_argument("--captions", help="glob of caption TFRecords for retrieval")
    _add_model_arguments(parser)
    parser.add_argument("--batch-size", type=at_least(1), default=64)
    parser.add_argument("--json", help="write the report here")


def _model_and_tokenizer(args):
    start_tensorflow()
    from keras_clip.data.tokenizer_spec import (
        check_fits,
        load_tokenizer,
        same_ids_as,
        saved_tokenizer_near,
    )
    from keras_clip.loading import load_model

    model = load_model(args.model, compile=False)
    saved = saved_tokenizer_near(args.model)
    spec = args.tokenizer if args.tokenizer is not None else saved or "openai"
    tokenizer = load_tokenizer(spec, model.context_length)
    check_fits(tokenizer, model, spec)
    if saved and spec != saved:
        own = load_tokenizer(saved, model.context_length)
        if same_ids_as(own) != same_ids_as(tokenizer):
            raise ValueError(
                f"tokenizer {spec!r} is not the one saved with the model ({saved}), whose "
                "ids the model was trained on: leave out --tokenizer to use that one.")
    return model, tokenizer


def evaluate(args):
    import json

    from keras_clip.evaluation.evaluate import evaluate as run_evaluation
    from keras_clip.evaluation.zero_shot import TEMPLATES

    model, tokenizer = _model_and_tokenizer(args)
    templates = lines(args.templates) if args.templates else TEMPLATES
    report = run_evaluation(model, tokenizer, folder=args.folder, captions=args.captions,
                            templates=templates, batch_size=args.batch_size)
    for section, values in report.items():
        print(section)
        for key, value in values.items():
            if isinstance(value, float):
                print(f"  {key:28s} {value:.4f}")
            elif key not in ("confusion_matrix", "classes"):
                print(f"  {key:28s} {value}")
    if args.json:
        with files.open(args.json, "w") as file:
            json.dump(report, file, indent=2, ensure_ascii=False)
    return 0


EXPORT_EXAMPLE = """examples:
  keras-clip export --model runs/clip --output saved_models/clip --classes classes.txt
  keras-clip export --model keras_clip_demo/run/model.keras --output saved_models/demo \\
      --tokenizer keras_clip_demo/tokenizer

Writes OUTPUT/<next version>/ for TF Serving (never overwrites a version):
  docker run -p 8501:8501 -v "$PWD/saved_models/clip:/models/clip" \\
      -e MODEL_NAME=clip tensorflow/serving
"""


def export_parser(subparsers):
    parser = add_command(
        subparsers, "export", EXPORT_EXAMPLE,
        help="write a TF Serving SavedModel that takes image bytes and raw text",
        description="Exports a saved CLIP model with preprocessing and tokenizer inside.",
    )
    parser.add_argument("--output", required=True, help="TF Serving model directory")
    parser.add_argument("--version", type=at_least(0),
                        help="default: the next free integer")
    parser.add_argument("--classes", help="text file, one class name per line (adds classify)")
    parser.add_argument("--xla", action="store_true",
                        help="compile the towers with XLA: faster on CPUs; TF Serving then "
                             "needs --xla_cpu_compilation_enabled=true (CPU builds only)")
    _add_model_arguments(parser)


def export(args):
    from keras_clip.evaluation.zero_shot import TEMPLATES
    from keras_clip.export import export_saved_model

    model, tokenizer = _model_and_tokenizer(args)
    path = export_saved_model(
        model, tokenizer, args.output, version=args.version,
        class_names=lines(args.classes) if args.classes else None,
        templates=lines(args.templates) if args.templates else TEMPLATES,
        jit_compile=args.xla)
    print(f"exported {path}")
    return 0


CONVERT_EXAMPLE = """examples:
  keras-clip convert --from openai ViT-B-32.pt --preset ViT-B/32 --out clip-b32
  keras-clip convert --from open_clip open_clip_model.safetensors \\
      --config open_clip/model_configs/ViT-B-32.json --out b32-open-clip
  keras-clip convert --from hf ./clip-vit-base-patch32 --out b32-hf --image-size 336

A Hugging Face directory may hold a CLIPModel (vocab.json, merges.txt) or a
SiglipModel (spiece.model, SigLIP's SentencePiece tokenizer, run in-graph).
--out ending in .keras writes one model file; otherwise a directory that
keras_clip.load_model, load_tokenizer and --model load (model.keras,
vocab.json and merges.txt or spiece.model, preprocessing.json).
"""


def convert_parser(subparsers):
    parser = add_command(
        subparsers, "convert", CONVERT_EXAMPLE,
        help="convert OpenAI, OpenCLIP or Hugging Face CLIP (and SigLIP) weights",
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
    parser.add_argument("--image-size", type=at_least(1),
                        help="build the image tower at this size (positions interpolated)")
    parser.add_argument("--bpe", help="another BPE merges file in OpenAI's layout "
                                      "(default: OpenAI's, shipped with keras_clip)")


def convert(args):
    import os

    if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
        start_tensorflow()  # Keras loads it; JAX and PyTorch convert without it
    from keras_clip.convert import convert_checkpoint, save_converted

    converted = convert_checkpoint(
        args.source_format, args.source, preset=args.preset, config=args.config,
        activation=args.activation, image_size=args.image_size,
        vocabulary_path=args.bpe)
    path = save_converted(*converted, args.out)
    print(f"converted {args.source} → {path}")
    return 0
