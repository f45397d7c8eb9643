"""The `keras-clip` command. It parses arguments, then calls the package.

The Keras backend is chosen by `KERAS_BACKEND` (TensorFlow by default).
Parsing and `--help` load neither Keras nor TensorFlow; the commands are
in `keras_clip/commands/`.
"""

import argparse
import os
import re
import sys
import tempfile
import zipfile

from keras_clip.commands import COMMANDS
from keras_clip.training.xla_flags import use_low_memory_cpu_schedule


# TensorFlow's start-up lines on a machine without a GPU: they read as
# failures ("failed call to cuInit") and say nothing a user can act on.
STARTUP_NOISE = re.compile(
    r"^(?:[IW]\d{4} |E\d{4} .*(?:cuInit|cuda)|WARNING: All log messages before absl"
    r"|To enable the following instructions)")


def _import_tensorflow_quietly(environ=os.environ):
    """Imports TensorFlow and finds its devices without the start-up chatter.

    TensorFlow writes those lines from C++ before its log level applies, so
    they are caught on file descriptor 2 and written back without the known
    noise; anything else (a real error) still shows. Runtime info and
    warnings are hidden too unless the user set `TF_CPP_MIN_LOG_LEVEL`.
    """
    environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            text = caught.read().decode("utf-8", "replace")
            sys.stderr.writelines(line for line in text.splitlines(keepends=True)
                                  if not STARTUP_NOISE.match(line))


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
        if args.command != "convert" or os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
            _import_tensorflow_quietly()  # every other command reads data with tf.data
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
