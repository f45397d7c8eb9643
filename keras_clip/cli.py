"""The `keras-clip` command. It parses arguments, then calls the package.

The Keras backend is chosen by `KERAS_BACKEND` (TensorFlow by default).
Parsing and `--help` load neither Keras nor TensorFlow; the commands are
in `keras_clip/commands/`.
"""

import argparse
import sys
import zipfile

from keras_clip.commands import COMMANDS
from keras_clip.training.xla_flags import use_low_memory_cpu_schedule


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


def build_parser():
    """The `keras-clip` argument parser, with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="keras-clip",
        description="Train, evaluate and serve CLIP models with Keras 3.",
        epilog="`keras-clip COMMAND --help` shows a command's options and examples.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_parser, _ in COMMANDS.values():
        add_parser(subparsers)
    return parser


def main(argv=None):
    """Runs `keras-clip ARGV`; returns the exit status.

    A user's mistake or bad input (a missing file, a bad value, a damaged
    file) prints one line `keras-clip COMMAND: what is wrong` and returns 2;
    `--debug` shows the traceback instead.
    """
    use_low_memory_cpu_schedule()  # before this process's first XLA compile
    args = build_parser().parse_args(argv)
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
