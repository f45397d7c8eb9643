"""Assertions shared by the tests."""

import keras
import numpy as np


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


def assert_layer_round_trip(layer, *inputs):
    """`get_config → from_config` keeps every argument and the same function.

    The clone, given the original's weights, must compute the same outputs: a
    config field that `get_config` drops changes the clone's behaviour or its
    weight shapes, and this fails.
    """
    outputs = layer(*inputs)
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    clone(*inputs)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(to_numpy(clone(*inputs)), to_numpy(outputs), atol=1e-6)
    revived = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert type(revived) is type(layer)


def assert_model_saves(model, inputs, tmp_path):
    """A `.keras` save and load gives the same config and outputs."""
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(model)
    assert loaded.get_config() == model.get_config()
    expected = keras.tree.map_structure(to_numpy, model(inputs))
    actual = keras.tree.map_structure(to_numpy, loaded(inputs))
    keras.tree.map_structure(
        lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), actual, expected
    )
    return loaded


def tiny_clip(vocabulary_size=1000, context_length=8, image_encoder=None,
              objective="contrastive"):
    """A small CLIPModel for fast tests (not a preset: a 1,000-token vocab)."""
    from keras_clip.models.clip_model import CLIPModel
    from keras_clip.models.text_transformer import TextTransformer
    from keras_clip.models.vision_transformer import VisionTransformer

    if image_encoder is None:
        image_encoder = VisionTransformer(
            image_size=16, patch_size=8, hidden_dim=32, num_layers=1, num_heads=2,
            output_dim=16,
        )
    text_encoder = TextTransformer(
        vocabulary_size=vocabulary_size, context_length=context_length,
        hidden_dim=32, num_layers=1, num_heads=2, output_dim=16,
        end_of_text_id=vocabulary_size - 1,
    )
    return CLIPModel(image_encoder, text_encoder, objective=objective)



def tiny_pairs(count, seed=0):
    """Synthetic pairs shaped for `tiny_clip()`."""
    from keras_clip.data.synthetic_pairs import synthetic_pairs

    return synthetic_pairs(
        count, image_size=16, context_length=8, vocabulary_size=1000, seed=seed
    )


class StopAt(keras.callbacks.Callback):
    """Calls `stop()` once `step` training steps are done: a kill, or an interrupt."""

    def __init__(self, step, stop):
        super().__init__()
        self.step, self.stop, self.seen = step, stop, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.step:
            self.stop()


def recorded_logit_shapes(monkeypatch):
    """The shapes of every logit matrix the chunked losses build, as they build them."""
    from keras_clip.losses import chunked_rows

    shapes, original = [], chunked_rows.scaled_logits

    def recording(*args, **kwargs):
        logits = original(*args, **kwargs)
        shapes.append(tuple(logits.shape))
        return logits

    monkeypatch.setattr(chunked_rows, "scaled_logits", recording)
    return shapes
