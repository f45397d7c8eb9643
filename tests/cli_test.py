import subprocess
import sys

import keras

from keras_clip import cli


def test_demo_trains_and_saves(tmp_path, capsys):
    output = tmp_path / "demo.keras"
    assert cli.main(["demo", "--steps", "20", "--pairs", "16", "--batch-size", "8",
                     "--learning-rate", "3e-3", "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    first, last = [float(x) for x in
                   printed.split("loss: ")[1].split(" (last)")[0].replace(
                       " (first epoch) → ", " ").split()]
    assert last < 0.5 * first, printed
    assert keras.saving.load_model(output).count_params() > 0


def test_help_shows_an_example():
    result = subprocess.run(
        [sys.executable, "-m", "keras_clip.cli", "demo", "--help"],
        capture_output=True, text=True, check=True,
    )
    assert "example:" in result.stdout and "keras-clip demo" in result.stdout
