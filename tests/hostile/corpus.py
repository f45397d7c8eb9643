"""Shared pieces of the hostile-input corpus: inputs made on the fly, and
the one check every CLI case ends with.

Every case gets one of two outcomes: a counted, reported skip with every
good record still delivered, or a one-line error naming the file, row or
key and what to do. `run_cli` enforces the second: `keras-clip` must return
(not raise), print exactly one `keras-clip COMMAND: …` line and no traceback.
"""

import json

import numpy as np
from PIL import Image

from keras_clip import cli
from tests.data.fixtures import encode, jpeg_declaring, png_declaring  # noqa: F401


def run_cli(capsys, argv):
    """`(exit code, stdout, stderr)` of `keras-clip ARGV` run in this process.

    Raises if the command let an exception out (which a user would see as a
    traceback). argparse's own usage errors exit 2 with their usage line.
    """
    capsys.readouterr()
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exit_:  # argparse: usage + one error line
        code = exit_.code
    out, err = capsys.readouterr()
    assert "Traceback" not in err + out
    return code, out, err


def assert_user_error(capsys, argv, *phrases, command=None):
    """The command fails with exit 2 and one clear line holding `phrases`."""
    code, out, err = run_cli(capsys, argv)
    assert code == 2, (code, out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    command = command or argv[0]
    errors = [line for line in lines if line.startswith(f"keras-clip {command}: ")]
    assert len(errors) == 1, err
    for phrase in phrases:
        assert phrase in errors[0], (phrase, errors[0])
    return errors[0]


def noise(width=40, height=30, seed=0, mode="RGB"):
    rng = np.random.default_rng(seed)
    shape = (height, width, 3) if mode == "RGB" else (height, width)
    return Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).convert(mode)


def write_table(folder, rows, name="captions.csv", header=("filepath", "caption"),
                encoding="utf-8"):
    """A CSV (rows of strings or bytes) written as raw bytes; returns its path."""
    lines = [",".join(header).encode(encoding)]
    for row in rows:
        cells = [c if isinstance(c, bytes) else _csv_cell(c).encode(encoding) for c in row]
        lines.append(b",".join(cells))
    path = folder / name
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _csv_cell(text):
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def write_jsonl(folder, rows, name="captions.jsonl"):
    path = folder / name
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def summary_of(prefix):
    with open(f"{prefix}-summary.json") as file:
        return json.load(file)
