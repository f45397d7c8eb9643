"""ZeroShotEvaluation: zero-shot accuracy (and retrieval) logged during `fit`."""

import keras

from keras_clip.evaluation import retrieval, zero_shot
from keras_clip.evaluation.embedding import embed_batches, slices


class ZeroShotEvaluation(keras.callbacks.Callback):
    """Measures zero-shot classification every `every_n_epochs` epochs.

    Builds the class-name classifier from the current weights, classifies
    `data`, and adds `{prefix}_top1` and `{prefix}_top5` to the epoch logs,
    so History, the progress bar and a TensorBoard callback placed after
    it record them. With `captions` (token ids of one caption per image of
    `data`, in order), also adds text→image and image→text Recall@5.

    Args:
        tokenizer: turns the prompts into token ids.
        class_names: list of str.
        data: `{"images", "labels"}` NumPy arrays (preprocessed images), or an
            iterable of such batches.
        templates: prompt templates with `{}` (default: `zero_shot.TEMPLATES`).
        captions: optional `(N, T)` token ids for retrieval.
        every_n_epochs: int.
        prefix: str. Log key prefix.
    """

    def __init__(self, tokenizer, class_names, data, templates=zero_shot.TEMPLATES,
                 captions=None, every_n_epochs=1, prefix="zero_shot", batch_size=256):
        super().__init__()
        self.tokenizer = tokenizer
        self.class_names = list(class_names)
        self.data = data
        self.templates = templates
        self.captions = captions
        self.every_n_epochs = every_n_epochs
        self.prefix = prefix
        self.batch_size = batch_size

    def _batches(self):
        if isinstance(self.data, dict):
            images, labels = self.data["images"], self.data["labels"]
            for start in range(0, len(labels), self.batch_size):
                yield {"images": images[start : start + self.batch_size],
                       "labels": labels[start : start + self.batch_size]}
        else:
            yield from self.data

    def evaluate(self):
        """The metrics for the model's current weights."""
        classifier = zero_shot.zero_shot_classifier(
            self.model, self.tokenizer, self.class_names, self.templates)
        metrics = zero_shot.evaluate_zero_shot(self.model, classifier, self._batches())
        logs = {f"{self.prefix}_top1": metrics["top1"], f"{self.prefix}_top5": metrics["top5"]}
        if self.captions is not None:
            images = embed_batches(self.model.encode_image,
                                   (batch["images"] for batch in self._batches()))
            texts = embed_batches(self.model.encode_text,
                                  slices(self.captions, self.batch_size))
            found = retrieval.retrieval_metrics(images, texts)
            logs[f"{self.prefix}_text_to_image_R@5"] = found["text_to_image_R@5"]
            logs[f"{self.prefix}_image_to_text_R@5"] = found["image_to_text_R@5"]
        return logs

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and (epoch + 1) % self.every_n_epochs == 0:
            logs.update(self.evaluate())
