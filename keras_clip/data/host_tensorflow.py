"""TensorFlow as the data substrate: kept off the GPUs when another backend trains."""

import keras
import tensorflow as tf


def keep_tensorflow_on_the_host():
    """Hides the GPUs from TensorFlow unless TensorFlow is the Keras backend.

    TensorFlow takes most of every visible GPU's memory at its first op.
    When JAX or PyTorch run the model, TensorFlow only reads and decodes
    data on the CPU, so it must not see the GPUs: with one process per GPU
    (torchrun), each process's TensorFlow would otherwise claim all of
    them. Called when keras_clip's data modules load; returns whether it
    hid any (False under the TensorFlow backend, without GPUs, or when
    TensorFlow's devices are already in use, which it then leaves alone).
    """
    if keras.backend.backend() == "tensorflow":
        return False
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return False
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # TensorFlow's devices were set up before keras_clip's data
        return False
    return True
