"""TrainingStateLogger: learning rate and the objective's state beside the loss."""

import keras


class TrainingStateLogger(keras.callbacks.Callback):
    """Adds `learning_rate`, the objective's `state` and `batch_size` to logs.

    For CLIP's objective that is `logit_scale`: the exp'd temperature.
    `batch_size` is the global batch of one optimizer step (all replicas'
    and all accumulation steps' examples), when given.

    Callbacks after it (TensorBoard, the progress bar, History) see them.
    Batch logs get them every `every` optimizer steps of the run (counted
    from `start_step`, as `StepProgress` counts) only: reading a variable
    syncs with the device.
    """

    def __init__(self, every=50, start_step=0, total_steps=None, batch_size=None):
        super().__init__()
        self.every, self.step, self.total_steps = every, start_step, total_steps
        self.batch_size = batch_size

    def _add(self, logs):
        if logs is None:
            return
        optimizer = self.model.optimizer
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        logs.update(self.model.objective.state(self.model.objective_weights))
        if self.batch_size is not None:
            logs["batch_size"] = self.batch_size

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step % self.every == 0 or self.step == self.total_steps:
            self._add(logs)

    def on_epoch_end(self, epoch, logs=None):
        self._add(logs)
