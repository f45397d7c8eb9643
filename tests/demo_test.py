import pytest

from keras_clip.demo import run_demo


def test_loss_falls(tmp_path):
    history = run_demo(steps=20, batch_size=8, num_pairs=16, learning_rate=3e-3,
                       output=str(tmp_path / "demo.keras"))
    losses = history.history["loss"]
    assert len(losses) == 10  # 20 steps of 2 batches per epoch
    assert losses[-1] < 0.5 * losses[0], losses


def test_rejects_partial_batches(tmp_path):
    with pytest.raises(ValueError, match="multiple of --batch-size"):
        run_demo(num_pairs=10, batch_size=4, output=str(tmp_path / "x.keras"))
