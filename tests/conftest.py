import keras
import pytest

if keras.backend.backend() == "tensorflow":
    import tensorflow as tf

    # Two logical CPUs for the MirroredStrategy tests; this must happen before
    # TensorFlow initialises its devices, i.e. before any test runs.
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )


@pytest.fixture(autouse=True)
def seeded():
    keras.utils.set_random_seed(1337)
