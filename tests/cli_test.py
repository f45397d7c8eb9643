import subprocess
import sys

import pytest

from keras_clip import cli


def test_demo_command_passes_its_options(monkeypatch, capsys):
    # The demo itself runs end to end in demo_test; here only the parsing.
    calls = []
    import keras_clip.demo

    monkeypatch.setattr(keras_clip.demo, "run_demo", lambda **options: calls.append(options))
    assert cli.main(["demo", "--output-dir", "out", "--train-pairs", "64", "--steps", "2",
                     "--batch-size", "16", "--seed", "3", "--no-plots",
                     "--export-dir", "", "--objective", "sigmoid"]) == 0
    assert calls == [{"output_dir": "out", "train_pairs": 64, "steps": 2, "batch_size": 16,
                      "seed": 3, "plots": False, "export_dir": "", "objective": "sigmoid"}]
    # A name that is no objective is a usage error naming the choices.
    with pytest.raises(SystemExit) as exit:
        cli.main(["demo", "--objective", "softmax"])
    assert exit.value.code == 2
    assert "invalid choice: 'softmax'" in capsys.readouterr().err


def test_help_shows_an_example():
    result = subprocess.run(
        [sys.executable, "-m", "keras_clip.cli", "demo", "--help"],
        capture_output=True, text=True, check=True,
    )
    assert "example:" in result.stdout and "keras-clip demo" in result.stdout
