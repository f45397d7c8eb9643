"""`keras-clip demo`, `make-tfrecords` and `train-tokenizer`."""

from keras_clip import files
from keras_clip.commands.arguments import (
    add_command,
    add_tokenizer_argument,
    at_least,
    positive_float,
)
from keras_clip.commands.quiet_tensorflow import start_tensorflow
from keras_clip.data.tokenizer_spec import (
    MERGES_FILE,
    PREPROCESSING_FILE,
    VOCABULARY_FILE,
)

DEMO_EXAMPLE = """example:
  keras-clip demo                      # TensorFlow backend, about 3 minutes on 2 cores
  KERAS_BACKEND=jax keras-clip demo --output-dir /tmp/demo
  keras-clip demo --objective sigmoid --output-dir /tmp/demo-siglip   # SigLIP's loss
"""
# The names of `keras_clip.losses.OBJECTIVES`, here so that --help imports no Keras.
OBJECTIVE_NAMES = ("contrastive", "sigmoid")


def demo_parser(subparsers):
    parser = add_command(
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
    parser.add_argument("--train-pairs", type=at_least(1), default=4000)
    parser.add_argument("--steps", type=at_least(1), default=800, help="training steps")
    parser.add_argument("--batch-size", type=at_least(1), default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--objective", choices=OBJECTIVE_NAMES, default="contrastive",
                        help="CLIP's softmax contrastive loss or SigLIP's pairwise sigmoid")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG pictures")
    parser.add_argument("--export-dir", default="saved_models/demo",
                        help="TF Serving directory for the trained model ('' to skip)")


def demo(args):
    start_tensorflow()
    from keras_clip.demo import run_demo

    run_demo(output_dir=args.output_dir, train_pairs=args.train_pairs,
             steps=args.steps, batch_size=args.batch_size, seed=args.seed,
             plots=not args.no_plots, export_dir=args.export_dir, objective=args.objective)
    return 0


MAKE_TFRECORDS_EXAMPLE = """examples:
  keras-clip make-tfrecords --table captions.csv --output data/train
  keras-clip make-tfrecords --webdataset 'shards/*.tar' --output data/train \\
      --shard-size-mb 200 --workers 8 --tokenizer openai

captions.csv has a header row with the columns filepath and caption; paths
are relative to the table's folder (or --images). TSV and JSONL work too.
"""


def _add_source_arguments(parser):
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--table", help="CSV, TSV or JSONL with filepath,caption")
    source.add_argument("--webdataset", help="glob of WebDataset .tar shards")


def make_tfrecords_parser(subparsers):
    parser = add_command(
        subparsers, "make-tfrecords", MAKE_TFRECORDS_EXAMPLE,
        help="write image–caption pairs as sharded TFRecords",
        description=(
            "Reads pairs from a CSV/TSV/JSONL table (columns filepath, caption) "
            "or from WebDataset tar shards (KEY.jpg + KEY.txt), checks and "
            "cleans them, and writes OUTPUT-NNNNN.tfrecord shards with a summary "
            "of what was written and why anything was skipped."
        ),
    )
    _add_source_arguments(parser)
    parser.add_argument("--images", help="folder the table's paths are relative to "
                        "(default: the table's folder)")
    parser.add_argument("--output", required=True, help="path prefix of the shards")
    parser.add_argument("--shard-size-mb", type=positive_float, default=100)
    parser.add_argument("--workers", type=at_least(1), default=4)
    parser.add_argument("--max-shorter-side", type=at_least(0), default=512,
                        help="downscale larger images to this shorter side (0: never)")
    add_tokenizer_argument(parser, "store no token ids (train tokenizes each batch)")
    parser.add_argument("--context-length", type=at_least(2), default=77,
                        help="with --tokenizer: ids stored per caption")


def _webdataset_tars(pattern):
    tars = [path for path in files.glob(pattern) if files.isfile(path)]
    if not tars:
        raise FileNotFoundError(f"No tar shards match {pattern!r}.")
    return tars


def _check_table(path):
    if not files.isfile(path):
        raise FileNotFoundError(f"No caption table at {path!r}.")


def make_tfrecords(args):
    from keras_clip.data import caption_sources
    from keras_clip.data.tfrecord_writer import write_tfrecords
    from keras_clip.data.tokenizer_spec import load_tokenizer

    expected = None
    if args.table:
        _check_table(args.table)
        start_tensorflow()
        expected = caption_sources.count_table_rows(args.table)
        pairs = caption_sources.read_caption_table(args.table, args.images)
    else:
        tars = _webdataset_tars(args.webdataset)
        start_tensorflow()
        pairs = caption_sources.read_webdataset(tars)
    tokenizer = None
    if args.tokenizer is not None:
        tokenizer = load_tokenizer(args.tokenizer, args.context_length)
    summary = write_tfrecords(
        pairs, args.output, shard_size_mb=args.shard_size_mb,
        num_workers=args.workers, max_shorter_side=args.max_shorter_side,
        tokenizer=tokenizer, expected_pairs=expected,
    )
    return 0 if summary.written else 1


TRAIN_TOKENIZER_EXAMPLE = """examples:
  keras-clip train-tokenizer --table captions.csv --output tokenizer
  keras-clip train-tokenizer --webdataset 'shards/*.tar' --output tokenizer-16k \\
      --vocabulary-size 16384

Then pass --tokenizer tokenizer to make-tfrecords, train, evaluate and
export (train saves it with the model, where evaluate and export find it).
"""


def train_tokenizer_parser(subparsers):
    parser = add_command(
        subparsers, "train-tokenizer", TRAIN_TOKENIZER_EXAMPLE,
        help="learn a byte-level BPE vocabulary from your captions",
        description=(
            "Learns a new CLIP tokenizer (OpenAI's pre-split and id layout) from "
            "the captions of a table or of WebDataset shards, for another "
            "language or domain, and writes vocab.json, merges.txt and "
            "preprocessing.json to OUTPUT."
        ),
    )
    _add_source_arguments(parser)
    parser.add_argument("--output", required=True, help="folder for the tokenizer files")
    parser.add_argument("--vocabulary-size", type=at_least(515), default=8192,
                        help="ids in all, at least 515: 512 byte symbols, 2 specials and "
                             "one merge (fewer if the captions run out of pairs)")
    parser.add_argument("--context-length", type=at_least(2), default=77)


def _webdataset_captions(tars, skipped):
    from keras_clip.data import caption_sources

    for pair in caption_sources.read_webdataset(tars):
        for caption in pair.captions:
            try:
                yield caption.decode("utf-8")
            except UnicodeDecodeError:
                skipped["caption not UTF-8"] += 1  # as make-tfrecords skips it


def _table_captions(table, skipped):
    from keras_clip.data import caption_sources

    for caption in caption_sources.table_captions(table):
        try:
            caption.encode("utf-8")  # stray bytes were read as surrogates
        except UnicodeEncodeError:
            skipped["caption not UTF-8"] += 1
            continue
        yield caption


def _check_fresh_output(folder):
    taken = [name for name in ("model.keras", VOCABULARY_FILE, MERGES_FILE)
             if files.exists(files.join(folder, name))]
    if taken:
        raise FileExistsError(f"{folder!r} already holds {', '.join(taken)}; not overwriting "
                              "it (choose another --output, or remove them first).")


def train_tokenizer(args):
    import collections

    _check_fresh_output(args.output)
    skipped = collections.Counter()
    if args.table:
        _check_table(args.table)
        captions = list(_table_captions(args.table, skipped))
    else:
        captions = list(_webdataset_captions(_webdataset_tars(args.webdataset), skipped))
    if not captions:
        raise ValueError("found no captions to learn a vocabulary from.")
    start_tensorflow()
    from keras_clip.data.clip_tokenizer import CLIPTokenizer

    tokenizer = CLIPTokenizer.train(captions, args.vocabulary_size, args.context_length)
    tokenizer.save_vocabulary(args.output)
    with files.open(files.join(args.output, PREPROCESSING_FILE), "w") as file:
        file.write(f'{{"context_length": {args.context_length}}}\n')
    noun = "caption" if len(captions) == 1 else "captions"
    print(f"learned {tokenizer.vocabulary_size()} ids from {len(captions):,} {noun} "
          f"→ {args.output}/ (pass --tokenizer {args.output})")
    for reason, count in skipped.items():
        print(f"skipped: {count} ({reason})")
    return 0
