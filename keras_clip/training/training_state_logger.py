"""TrainingStateLogger: learning rate and temperature beside the loss."""

import math

import keras


class TrainingStateLogger(keras.callbacks.Callback):
    """Adds `learning_rate` and `logit_scale` (the exp'd temperature) to logs.

    Callbacks after it (TensorBoard, the progress bar, History) see them.
    Batch logs get them every `every` steps only: reading a variable syncs
    with the device.
    """

    def __init__(self, every=50):
        super().__init__()
        self.every = every

    def _add(self, logs):
        if logs is None:
            return
        optimizer = self.model.optimizer
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        logs["logit_scale"] = math.exp(
            float(keras.ops.convert_to_numpy(self.model.logit_scale))
        )

    def on_train_batch_end(self, batch, logs=None):
        if (batch + 1) % self.every == 0:
            self._add(logs)

    def on_epoch_end(self, epoch, logs=None):
        self._add(logs)
