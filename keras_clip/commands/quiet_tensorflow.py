"""TensorFlow started without its start-up chatter, for the `keras-clip` commands."""

import os
import re
import sys
import tempfile

# TensorFlow's start-up lines on a machine without a GPU: they read as
# failures ("failed call to cuInit") and say nothing a user can act on.
STARTUP_NOISE = re.compile(
    r"^(?:[IW]\d{4} |E\d{4} .*(?:cuInit|cuda)|WARNING: All log messages before absl"
    r"|To enable the following instructions)")


def start_tensorflow(environ=os.environ):
    """Imports TensorFlow and finds its devices without the start-up chatter.

    TensorFlow writes those lines from C++ before its log level applies, so
    they are caught on file descriptor 2 and written back without the known
    noise; anything else still shows. Later C++ log lines are hidden too
    (`TF_CPP_MIN_LOG_LEVEL=3`, unless the user set a level): TensorFlow's
    errors still reach the user as Python exceptions. Each command calls
    this after its cheap checks, so a typo is reported at once.
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
