"""Helpers run in fresh processes by distribution_test.py.

`python -m tests.training.run_distributed CONFIG.json OUTPUT.npz [OPTION N]`
trains with the config's distribution and saves the final weights; the
process environment (`XLA_FLAGS`, `TF_CONFIG`, `KERAS_BACKEND`,
`KERAS_DISTRIBUTION_*`) sets up the devices and processes. Options:

- `--stop-at N`: end the process abruptly after N steps (no clean-up, as a
  kill would), writing no weights;
- `--as-workers K`: feed one process the global batches that K
  file-sharded processes feed together (each step: process 0's part, then
  process 1's, ...), through the trainer's own per-process pipelines.
"""

import json
import os
import sys

import keras
import numpy as np

from keras_clip.training import train, trainer
from keras_clip.training.distribution import Distribution
from tests.helpers import StopAt


def kill():
    sys.stdout.flush()
    os._exit(0)  # no clean-up, as a kill


def feed_as_workers(num_workers):
    import tensorflow as tf

    per_process = trainer._training_data

    def joined(config, model, tokenizer, start_step, distribution):
        parts = [per_process(config, model, tokenizer, start_step,
                             Distribution("single", 1, input_worker=(num_workers, index)))
                 for index in range(num_workers)]
        return tf.data.Dataset.zip(tuple(parts)).map(
            lambda *batches: {key: tf.concat([batch[key] for batch in batches], 0)
                              for key in batches[0]})

    trainer._training_data = joined


if __name__ == "__main__":
    with open(sys.argv[1]) as file:
        config = json.load(file)
    options = dict(zip(sys.argv[3::2], map(int, sys.argv[4::2])))
    if "--as-workers" in options:
        feed_as_workers(options["--as-workers"])
    callbacks = [StopAt(options["--stop-at"], kill)] if "--stop-at" in options else []
    result = train(config, callbacks=callbacks)
    weights = [keras.ops.convert_to_numpy(w) for w in result.model.weights]
    np.savez(sys.argv[2], *weights)
    print(f"trained with {result.distribution} over {result.replicas} replicas")
    if "val_loss" in result.history:
        print(f"val_loss {result.history['val_loss'][-1]!r}")
