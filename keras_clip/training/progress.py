"""StepProgress: training progress counted in optimizer steps.

Keras' own bar counts `fit` epochs, which `train` uses as checkpoint
intervals, and writes carriage returns and backspaces into a log file.
This callback counts steps of the whole run (a resumed run starts at its
checkpoint) with a `ProgressLine`: redrawn in place on a terminal, a plain
line every `every` steps in a file or a pipe.
"""

import time

import keras

from keras_clip.progress_line import ProgressLine, duration

# Log keys shown, and their short names.
SHOWN = {
    "loss": "loss",
    "image_to_text_accuracy": "i2t acc",
    "text_to_image_accuracy": "t2i acc",
    "learning_rate": "lr",
    "logit_scale": "scale",
    "logit_bias": "bias",
    "batch_size": "batch",
}


class StepProgress(keras.callbacks.Callback):
    """Prints `step N/TOTAL` with the latest metrics, speed and time left.

    Args:
        total_steps: steps of the whole run.
        start_step: steps done before this `fit` (a resumed run).
        verbose: 0 prints nothing; 1 redraws one line on a terminal and
            prints a line every `every` steps elsewhere; 2 always prints lines.
        every: steps between printed lines (not on a terminal).
        stream: where to write (default: standard output).
    """

    def __init__(self, total_steps, start_step=0, verbose=1, every=50, stream=None):
        super().__init__()
        self.total_steps, self.step, self.verbose = total_steps, start_step, verbose
        self._first_step = start_step
        self._line = ProgressLine(every, stream, redraw=False if verbose == 2 else None)
        self._started = None

    def on_train_begin(self, logs=None):
        self._started = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.verbose:
            self._line.update(self.step, lambda: self._text(logs),
                              last=self.step == self.total_steps)

    def on_epoch_end(self, epoch, logs=None):
        validation = {key: value for key, value in (logs or {}).items()
                      if key.startswith("val_")}
        if self.verbose and validation:
            shown = "  ".join(f"{key} {float(value):.4g}" for key, value in validation.items())
            self._line.print(f"validation at step {self.step}: {shown}")

    def on_train_end(self, logs=None):
        if self.verbose:
            self._line.end()

    def _text(self, logs):
        parts = [f"step {self.step}/{self.total_steps}"]
        for key, name in SHOWN.items():
            if logs and key in logs:
                value = float(keras.ops.convert_to_numpy(logs[key]))
                if name == "batch":
                    parts.append(f"{name} {value:.0f}")
                else:
                    parts.append(f"{name} {value:.2e}" if name == "lr" else f"{name} {value:.4f}")
        done, elapsed = self.step - self._first_step, time.monotonic() - self._started
        if done and elapsed > 0:
            rate = done / elapsed
            parts.append(f"{rate:.3g} steps/s")
            if self.step < self.total_steps:
                parts.append(f"{duration((self.total_steps - self.step) / rate)} left")
            else:
                parts.append(f"{duration(elapsed)} in all")
        return "  ".join(parts)
