"""What several `keras-clip` commands share: help layout, number types, the tokenizer."""

import argparse

from keras_clip import files
from keras_clip.data.tokenizer_spec import HELP as TOKENIZER_HELP


def add_command(subparsers, name, example, **texts):
    """A subcommand whose --help ends with its example (kept as written)."""
    parser = subparsers.add_parser(
        name, epilog=example, formatter_class=argparse.RawDescriptionHelpFormatter, **texts
    )
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error")
    return parser


def add_tokenizer_argument(parser, default_help):
    """`--tokenizer SPEC`, spelled and read the same way by every command."""
    parser.add_argument("--tokenizer", metavar="SPEC",
                        help=f"{TOKENIZER_HELP}; default: {default_help}")


def at_least(minimum, kind=int):
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


def positive_float(text):
    value = at_least(0.0, float)(text)
    if value == 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def lines(path):
    """The non-empty lines of a text file, stripped."""
    with files.open(path) as file:
        return [line.strip() for line in file if line.strip()]
