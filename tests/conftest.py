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


def pytest_collection_modifyitems(config, items):
    """Tests marked `backend_independent` run on the TensorFlow pass only.

    They exercise TensorFlow, NumPy or plain Python code that no Keras backend
    reaches (TFRecord writing, tables and tars, image headers, the tokenizer's
    files, help texts, a served SavedModel), or plumbing whose outcome no
    backend changes (config keys reaching config.json, CLI parsing, hostile
    inputs counted by the data pipeline), so running them three times would
    only triple their cost. What the backends do differently (training
    steps, saving, resuming, distribution) is tested on every pass.
    """
    if keras.backend.backend() == "tensorflow":
        return
    skip = pytest.mark.skip(reason="backend-independent: runs on the TensorFlow pass")
    for item in items:
        if item.get_closest_marker("backend_independent"):
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def seeded():
    keras.utils.set_random_seed(1337)
