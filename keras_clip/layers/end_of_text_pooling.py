"""Reads the text tower's features at the end-of-text token."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_clip")
class EndOfTextPooling(keras.layers.Layer):
    """Picks, per sequence, the hidden state at the first end-of-text token.

    The position is found from the ids themselves (`token_ids ==
    end_of_text_id`), not by an argmax over ids, so it holds for any
    vocabulary, including ones where end-of-text is not the largest id. A
    sequence with no end-of-text token (a caller's own tokenizer) falls back
    to its last non-padding token.

    Args:
        end_of_text_id: int. Id of `<|endoftext|>` (49407 for OpenAI's BPE).
        padding_id: int. Id used for padding (0).

    Call args:
        hidden: `(B, T, width)` float tensor.
        token_ids: `(B, T)` int tensor.

    Example:
    >>> pool = EndOfTextPooling(end_of_text_id=9)
    >>> tuple(pool(np.arange(12.0).reshape(1, 4, 3), np.array([[5, 6, 9, 0]])).shape)
    (1, 3)
    """

    def __init__(self, end_of_text_id=49407, padding_id=0, **kwargs):
        super().__init__(**kwargs)
        self.end_of_text_id = end_of_text_id
        self.padding_id = padding_id

    def call(self, hidden, token_ids):
        is_end = ops.cast(ops.equal(token_ids, self.end_of_text_id), "int32")
        # Only the first end-of-text counts: it is where the running count is 1.
        first_end = is_end * ops.cast(ops.equal(ops.cumsum(is_end, axis=1), 1), "int32")
        end_position = ops.argmax(first_end, axis=1)  # (B,)
        num_tokens = ops.sum(
            ops.cast(ops.not_equal(token_ids, self.padding_id), "int32"), axis=1
        )
        last_token = ops.maximum(num_tokens - 1, 0)  # (B,)
        has_end = ops.any(ops.equal(is_end, 1), axis=1)
        position = ops.where(has_end, ops.cast(end_position, "int32"), last_token)
        index = ops.reshape(position, (-1, 1, 1))  # (B, 1, 1)
        return ops.take_along_axis(hidden, index, axis=1)[:, 0]  # (B, width)

    def compute_output_shape(self, hidden_shape, token_ids_shape):
        return (hidden_shape[0], hidden_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            {"end_of_text_id": self.end_of_text_id, "padding_id": self.padding_id}
        )
        return config
