"""`python -m tests.training.run_train CONFIG.json [KILL_AT_STEP]`.

Runs `train()` in a fresh process; with KILL_AT_STEP the process sends
itself SIGKILL after that step, the way an OOM killer or a pre-empted VM
ends a run: no cleanup, no exception handlers.
"""

import json
import os
import signal
import sys

import keras

from keras_clip.training import train


class KillAt(keras.callbacks.Callback):
    def __init__(self, step):
        super().__init__()
        self.kill_step, self.step = step, 0

    def on_train_begin(self, logs=None):
        self.step = int(self.model.optimizer.iterations)

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step == self.kill_step:
            os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    with open(sys.argv[1]) as file:
        config = json.load(file)
    callbacks = [KillAt(int(sys.argv[2]))] if len(sys.argv) > 2 else []
    train(config, callbacks=callbacks)
