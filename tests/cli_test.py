import subprocess
import sys

import keras

from keras_clip import cli


def test_demo_command_trains_and_saves(tmp_path, capsys):
    output = tmp_path / "demo.keras"
    assert cli.main(["demo", "--steps", "2", "--pairs", "8", "--batch-size", "8",
                     "--output", str(output)]) == 0
    assert "image→text top-1" in capsys.readouterr().out
    assert keras.saving.load_model(output).name == "clip_tiny_vit"


def test_help_shows_an_example():
    result = subprocess.run(
        [sys.executable, "-m", "keras_clip.cli", "demo", "--help"],
        capture_output=True, text=True, check=True,
    )
    assert "example:" in result.stdout and "keras-clip demo" in result.stdout
