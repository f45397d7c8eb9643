"""Zero-shot classification: class names written as sentences become a classifier.

Radford et al. (2021), section 3.1.4: each class name is put into several
prompt templates; their text embeddings (unit norm) are averaged and the
mean re-normalised, giving one weight row per class. An image is assigned
the class whose row is most similar to its embedding. No training.
"""

import numpy as np

from keras_clip.evaluation.embedding import embed_batches, slices

# Generic prompt templates, ours; the paper ensembles 80 such for ImageNet.
TEMPLATES = (
    "a photo of a {}.",
    "a picture of a {}.",
    "an image showing a {}.",
    "a close-up photo of the {}.",
    "a blurry photo of a {}.",
    "a bright photo of a {}.",
    "a dark photo of the {}.",
    "a drawing of a {}.",
    "a low resolution photo of a {}.",
    "a cropped photo of the {}.",
    "a photo of a small {}.",
    "a photo of a large {}.",
)


def _unit_rows(x):
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def zero_shot_classifier(model, tokenizer, class_names, templates=TEMPLATES, batch_size=256):
    """`(num_classes, D)` float32 classifier weights, unit rows.

    Row `c` is `normalise(mean_t normalise(text(template_t(class_c))))`.
    Texts are tokenized and encoded in batches of `batch_size`.
    """
    if not class_names:
        raise ValueError("Zero-shot classification needs at least one class name.")
    if not templates or any("{}" not in t for t in templates):
        raise ValueError("Each template must contain '{}' where the class name goes.")
    texts = [template.format(name) for name in class_names for template in templates]
    embeddings = embed_batches(lambda batch: model.encode_text(tokenizer(batch)),
                               slices(texts, batch_size))
    per_text = embeddings.reshape(len(class_names), len(templates), -1)  # (C, T, D)
    return ensemble_class_embeddings(per_text)


def ensemble_class_embeddings(per_template):
    """`(C, T, D)` text embeddings → `(C, D)`: normalise, mean over T, normalise."""
    return _unit_rows(_unit_rows(np.asarray(per_template, np.float32)).mean(axis=1))


def classify(image_embeddings, classifier, top_k=5):
    """Indices of the `top_k` best classes per image, best first: `(N, k)`."""
    scores = _unit_rows(np.asarray(image_embeddings, np.float32)) @ classifier.T
    top_k = min(top_k, classifier.shape[0])
    best = np.argpartition(-scores, top_k - 1, axis=1)[:, :top_k]
    order = np.argsort(-np.take_along_axis(scores, best, axis=1), axis=1, kind="stable")
    return np.take_along_axis(best, order, axis=1)


def classification_metrics(predictions, labels, num_classes):
    """Top-1/top-5 accuracy and the `(true, predicted)` confusion matrix."""
    labels = np.asarray(labels)
    confusion = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(confusion, (labels, predictions[:, 0]), 1)
    return {
        "top1": float(np.mean(predictions[:, 0] == labels)),
        "top5": float(np.mean((predictions[:, :5] == labels[:, None]).any(axis=1))),
        "count": int(labels.size),
        "confusion_matrix": confusion,
    }


def evaluate_zero_shot(model, classifier, batches):
    """Zero-shot metrics over `batches` of `{"images", "labels"}`."""
    labels = []

    def images_of(batches):
        for batch in batches:
            labels.append(np.asarray(batch["labels"]))
            yield batch["images"]

    embeddings = embed_batches(model.encode_image, images_of(batches))
    return classification_metrics(
        classify(embeddings, classifier), np.concatenate(labels), classifier.shape[0]
    )
