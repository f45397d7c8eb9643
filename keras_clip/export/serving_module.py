"""ServingModule: CLIP's serving signatures, preprocessing and tokenizer inside."""

import tensorflow as tf

from keras_clip.data import image_ops


class ServingModule(tf.Module):
    """A `tf.Module` whose functions take what TF Serving clients send.

    Images arrive as encoded bytes (JPEG, PNG, GIF, BMP) and go through the
    evaluation preprocessing of `image_ops.preprocess_for_eval` with the
    model's preprocessing record (its mean and std); texts arrive as strings
    and go through the `CLIPTokenizer`. Logits and probabilities are the
    model's objective's: softmax over the texts for CLIP's, each pair's
    sigmoid for SigLIP's; `similarity` and `classify` say which in
    `probability_kind`, one string per image ("softmax" or "sigmoid"). With
    a zero-shot classifier (`class_names` and `(C, D)` weights), `classify`
    is added.
    """

    def __init__(self, model, tokenizer, class_names=None, classifier=None, jit_compile=False):
        super().__init__()
        self.model = model
        # With jit_compile the towers run as XLA clusters inside the graph
        # (decoding and tokenizing stay graph ops, which XLA cannot compile).
        self.encode_image, self.encode_text = model.encode_image, model.encode_text
        if jit_compile:
            self.encode_image = tf.function(model.encode_image, jit_compile=True)
            self.encode_text = tf.function(model.encode_text, jit_compile=True)
        self.tokenizer = tokenizer
        self.image_size = model.image_size
        self.preprocessing = model.preprocessing  # its mean and std normalise images
        self.vocabulary_size = model.text_encoder.vocabulary_size
        self.objective, self.objective_weights = model.objective, model.objective_weights
        if self.objective.probability_kind not in ("softmax", "sigmoid"):
            raise ValueError(
                f"The {self.objective.name!r} objective ({type(self.objective).__name__}) "
                "must say what its probabilities are to be served: set its "
                "probability_kind to 'softmax' or 'sigmoid'.")
        self.class_names = None
        if class_names is not None:
            self.class_names = tf.constant(list(class_names))
            self.classifier = tf.constant(classifier, tf.float32)  # (C, D)
        size, length = model.image_size, model.context_length
        strings = tf.TensorSpec([None], tf.string)
        self.embed_pixels = tf.function(
            self._embed_pixels, input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)])
        self.embed_token_ids = tf.function(
            self._embed_token_ids, input_signature=[tf.TensorSpec([None, length], tf.int32)])
        self.embed_images = tf.function(self._embed_images, input_signature=[strings])
        self.embed_texts = tf.function(self._embed_texts, input_signature=[strings])
        self.similarity = tf.function(self._similarity, input_signature=[strings, strings])
        if class_names is not None:
            self.classify = tf.function(self._classify, input_signature=[strings])

    def _pixels(self, image_bytes):
        tf.debugging.assert_rank(image_bytes, 1, "image_bytes must be a 1-D batch of strings")
        size = self.image_size
        return tf.map_fn(
            lambda data: image_ops.preprocess_for_eval(
                data, size, **self.preprocessing.evaluation_options),
            image_bytes,
            fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32))  # (N, S, S, 3)

    def _embed_pixels(self, pixels):
        size = self.image_size
        pixels = _checked_shape(pixels, [None, size, size, 3], "pixels")
        tf.debugging.assert_all_finite(pixels, "pixels must be finite numbers")
        return {"embeddings": self.encode_image(pixels)}

    def _embed_token_ids(self, token_ids):
        token_ids = _checked_shape(token_ids, [None, self.model.context_length], "token_ids")
        with tf.control_dependencies([
            tf.debugging.assert_non_negative(token_ids, "token_ids must not be negative"),
            tf.debugging.assert_less(
                token_ids, self.vocabulary_size,
                f"token_ids must be below the vocabulary size {self.vocabulary_size}"),
        ]):
            return {"embeddings": self.encode_text(tf.identity(token_ids))}

    def _embed_images(self, image_bytes):
        image_bytes = _checked_shape(image_bytes, [None], "image_bytes")
        return self._embed_pixels(self._pixels(image_bytes))

    def _embed_texts(self, texts):
        texts = _checked_shape(texts, [None], "texts")
        return self._embed_token_ids(self.tokenizer(texts))

    def _similarity(self, image_bytes, texts):
        images = self._embed_images(image_bytes)["embeddings"]
        texts = self._embed_texts(texts)["embeddings"]
        logits = self.objective.logits(self.objective_weights, images, texts)
        return {"logits": logits, "probabilities": self.objective.probabilities(logits),
                "probability_kind": self._probability_kind(images)}

    def _classify(self, image_bytes):
        images = self._embed_images(image_bytes)["embeddings"]
        logits = self.objective.logits(self.objective_weights, images, self.classifier)
        best = tf.argmax(logits, axis=-1)
        return {"probabilities": self.objective.probabilities(logits),
                "top_class": tf.gather(self.class_names, best),
                "probability_kind": self._probability_kind(images)}

    def _probability_kind(self, images):
        """`(N,)` strings naming what `probabilities` are, one per image (a row)."""
        return tf.fill(tf.shape(images)[:1], self.objective.probability_kind)

    def signatures(self):
        signatures = {
            "serving_default": self.embed_images, "embed_images": self.embed_images,
            "embed_texts": self.embed_texts, "similarity": self.similarity,
            "embed_pixels": self.embed_pixels, "embed_token_ids": self.embed_token_ids,
        }
        if self.class_names is not None:
            signatures["classify"] = self.classify
        return signatures


def _checked_shape(tensor, shape, name):
    """`tensor`, checked at run time to have `shape` (an error names `name`).

    A signature's input spec is not enforced on what a server feeds: a
    `[1, 1]` batch reaches the graph and fails deep inside it. EnsureShape
    runs on every request and says what the input should be.
    """
    expected = "[" + ", ".join("N" if side is None else str(side) for side in shape) + "]"
    with tf.name_scope(f"check_{name}"):
        return tf.ensure_shape(tensor, shape, name=f"{name}_must_be_{expected}"
                               .replace("[", "").replace("]", "").replace(", ", "x"))
