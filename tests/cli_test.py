import subprocess
import sys

import keras

from keras_clip import cli


def test_demo_command_passes_its_options(tmp_path, capsys):
    assert cli.main(["demo", "--output-dir", str(tmp_path), "--train-pairs", "64",
                     "--steps", "2", "--batch-size", "16", "--no-plots", "--export-dir", ""]) == 0
    assert "zero-shot top-1" in capsys.readouterr().out
    assert keras.saving.load_model(tmp_path / "run" / "model.keras").image_size == 32


def test_help_shows_an_example():
    result = subprocess.run(
        [sys.executable, "-m", "keras_clip.cli", "demo", "--help"],
        capture_output=True, text=True, check=True,
    )
    assert "example:" in result.stdout and "keras-clip demo" in result.stdout
