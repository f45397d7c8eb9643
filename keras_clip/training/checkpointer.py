"""Checkpointer: saves every N steps, resumes after a crash, stops on time."""

import json

import keras

from keras_clip import files

LATEST = "latest.json"


def latest_checkpoint(directory):
    """`(step, path)` of the newest complete checkpoint in `directory`, or None."""
    path = files.join(directory, LATEST)
    if not files.exists(path):
        return None
    with files.open(path) as file:
        latest = json.load(file)
    return latest["step"], files.join(directory, latest["file"])


class Checkpointer(keras.callbacks.Callback):
    """Saves the whole model (weights, optimizer state, config) as `.keras`.

    Counts optimizer steps from `start_step`, saves every `every` steps and
    at the end of training, keeps the newest `keep` files, and stops
    training once `total_steps` are done (Keras checks after each batch),
    so a resumed run stops at the same step as an uninterrupted one. A file
    is written under a temporary name and renamed, and `latest.json` is
    replaced only after, so a process killed mid-save leaves the previous
    checkpoint intact. Under MultiWorkerMirroredStrategy every worker must
    save (saving reads replicated variables collectively): the chief into
    the run's directory, the others into scratch ones.

    Args:
        directory: str. Where checkpoints go.
        every: int. Steps between checkpoints.
        total_steps: int. Where training stops.
        start_step: int. Steps already done (when resuming).
        keep: int. Newest checkpoints to keep.
    """

    def __init__(self, directory, every, total_steps, start_step=0, keep=2):
        super().__init__()
        self.directory = directory
        self.every = every
        self.total_steps = total_steps
        self.step = start_step
        self.keep = keep
        self.saved_step = start_step

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step % self.every == 0:
            self.save()
        if self.step >= self.total_steps:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.step != self.saved_step:
            self.save()

    def save(self):
        self.saved_step = self.step
        files.makedirs(self.directory)
        name = f"step-{self.step:09d}.keras"
        partial = files.join(self.directory, "partial.keras")
        files.clear_for_writing(partial)  # left by a killed save
        self.model.save(partial)
        files.replace(partial, files.join(self.directory, name))
        files.write_atomically(files.join(self.directory, LATEST),
                               json.dumps({"step": self.step, "file": name}))
        saved = sorted(f for f in files.listdir(self.directory) if f.startswith("step-"))
        for old in saved[: -self.keep]:
            files.remove(files.join(self.directory, old))
