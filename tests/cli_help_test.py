"""`keras-clip` help is quick, quiet, and lists what a user can set."""

import dataclasses
import json
import os
import pathlib
import re
import subprocess
import sys
import time

import pytest

from keras_clip import cli
from keras_clip.models.clip_presets import PRESETS
from keras_clip.training.config import TrainConfig

pytestmark = pytest.mark.backend_independent

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_help_of_every_command_loads_no_tensorflow_and_is_quick():
    script = (
        "import sys, time\n"
        "start = time.monotonic()\n"
        "from keras_clip import cli\n"
        "from keras_clip.commands import COMMANDS\n"
        "for command in [[]] + [[name] for name in COMMANDS]:\n"
        "    try:\n"
        "        cli.main(command + ['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = [m for m in sys.modules\n"
        "         if m.split('.')[0] in ('keras', 'tensorflow', 'jax', 'torch')]\n"
        "print('RESULT', time.monotonic() - start, len(heavy))\n"
    )
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True, env={**os.environ, "KERAS_BACKEND": "tensorflow"})
    wall = time.monotonic() - started
    seconds, heavy = result.stdout.split("RESULT")[1].split()
    assert int(heavy) == 0  # nothing heavy is imported to print help
    assert wall < 2.0 * 8, wall  # eight help texts, each well under 2 s with start-up
    assert float(seconds) < 2.0
    assert result.stderr == ""


def test_train_help_lists_every_key_with_its_default(capsys):
    try:
        cli.main(["train", "--help"])
    except SystemExit:
        pass
    shown = capsys.readouterr().out
    for field in dataclasses.fields(TrainConfig):
        assert f"  {field.name} = {json.dumps(field.default)}\n" in shown, field.name


def test_the_readme_lists_every_preset_with_its_sizes():
    rows = {m.group(1): (int(m.group(2)), int(m.group(3))) for m in re.finditer(
        r"^\| `([^`]+)` \| [^|]+ \| (\d+) \| (\d+) \|", README.read_text(), flags=re.M)}
    assert rows == {name: (preset["image"][1]["image_size"],
                           preset["text"][1]["context_length"])
                    for name, preset in PRESETS.items()}
