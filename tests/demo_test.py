import json
import os

import keras
import pytest

from keras_clip.demo import run_demo

# Exporting from JAX or PyTorch goes through a TensorFlow subprocess, which
# tests/export covers (and clip_adamw_test for a trained model); here it
# would only repeat that at ~40 s a backend.
EXPORTS = keras.backend.backend() == "tensorflow"


def test_demo_runs_end_to_end_and_reports_against_chance(tmp_path, capsys):
    report = run_demo(output_dir=str(tmp_path), train_pairs=256, steps=8, batch_size=32,
                      export_dir=str(tmp_path / "served") if EXPORTS else "")
    out = capsys.readouterr().out
    assert "zero-shot top-1, held-out combinations" in out and "× chance" in out
    assert report["zero_shot_chance"] == pytest.approx(1 / 24)
    assert report["retrieval_R@5_chance"] == pytest.approx(5 / 300)
    for key in ("zero_shot_held_out_top1", "text_to_image_R@5", "image_to_text_R@5"):
        assert 0.0 <= report[key] <= 1.0
    assert json.loads((tmp_path / "report.json").read_text())["model"] == report["model"]
    assert os.path.exists(report["model"])
    if EXPORTS:
        assert report["export"] == str(tmp_path / "served" / "1")
        assert os.path.exists(os.path.join(report["export"], "saved_model.pb"))
    assert "text→image query" in out
    pictures = {"curves.png", "similarity.png", "query.png"}
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "no pictures" in out
    else:
        assert pictures <= set(os.listdir(tmp_path))
