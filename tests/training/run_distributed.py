"""Helpers run in fresh processes by distribution_test.py.

`python -m tests.training.run_distributed CONFIG.json OUTPUT.npz` trains
with the config's distribution and saves the final weights; the process
environment (`XLA_FLAGS`, `TF_CONFIG`, `KERAS_BACKEND`) sets up the devices.
"""

import json
import sys

import keras
import numpy as np

from keras_clip.training import train

if __name__ == "__main__":
    with open(sys.argv[1]) as file:
        config = json.load(file)
    result = train(config)
    weights = [keras.ops.convert_to_numpy(w) for w in result.model.weights]
    np.savez(sys.argv[2], *weights)
    print(f"trained with {result.distribution} over {result.replicas} replicas")
