"""Text input: token embeddings plus learned positions."""

import keras
from keras import ops


def check_context_length(token_ids, context_length):
    """Raises a clear error for token ids wider than the context."""
    length = token_ids.shape[-1]
    if length is not None and length > context_length:
        raise ValueError(
            f"token_ids have {length} positions but the context length is "
            f"{context_length}; tokenize with context_length={context_length}."
        )


@keras.saving.register_keras_serializable(package="keras_clip")
class TokenAndPositionEmbedding(keras.layers.Layer):
    """Maps `(B, T)` token ids to `(B, T, width)` vectors, `T <= context_length`.

    Token embeddings start at std 0.02 and positions at std 0.01, as in the
    CLIP release. Sequences shorter than the context take the first `T`
    positions (or, with `pad_with`, are padded to the whole context first);
    longer ones are refused with a clear error.

    Args:
        vocabulary_size: int. Number of token ids.
        context_length: int. Longest sequence (77 in the paper).
        hidden_dim: int. Width of each vector.
        pad_with: int or None. If set, shorter rows are padded with this id
            to `context_length` before embedding, so the output is always
            `(B, context_length, width)`: for towers that read every
            position, whose outputs trimmed padding would change.

    Example:
    >>> layer = TokenAndPositionEmbedding(1000, context_length=16, hidden_dim=8)
    >>> tuple(layer(np.zeros((2, 16), "int32")).shape)
    (2, 16, 8)
    """

    def __init__(self, vocabulary_size, context_length, hidden_dim, pad_with=None, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size = vocabulary_size
        self.context_length = context_length
        self.hidden_dim = hidden_dim
        self.pad_with = pad_with

    def build(self, input_shape):
        normal = keras.initializers.RandomNormal
        self.token_embedding = self.add_weight(
            shape=(self.vocabulary_size, self.hidden_dim),
            initializer=normal(stddev=0.02),
            name="token_embedding",
        )
        self.position_embedding = self.add_weight(
            shape=(self.context_length, self.hidden_dim),
            initializer=normal(stddev=0.01),
            name="position_embedding",
        )

    def call(self, token_ids):
        check_context_length(token_ids, self.context_length)
        if self.pad_with is not None:
            missing = self.context_length - ops.shape(token_ids)[-1]
            token_ids = ops.pad(token_ids, [[0, 0], [0, missing]],
                                constant_values=self.pad_with)
        x = ops.take(self.token_embedding, token_ids, axis=0)  # (B, T, width)
        positions = self.position_embedding[: ops.shape(token_ids)[-1]]
        return ops.cast(x + positions[None], self.compute_dtype)

    def compute_output_shape(self, input_shape):
        if self.pad_with is not None:
            return (*input_shape[:-1], self.context_length, self.hidden_dim)
        return (*input_shape, self.hidden_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "context_length": self.context_length,
                "hidden_dim": self.hidden_dim,
                "pad_with": self.pad_with,
            }
        )
        return config
