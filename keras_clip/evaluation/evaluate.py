"""`evaluate()`: zero-shot over a class folder and retrieval over caption shards."""

from keras_clip.evaluation import retrieval, zero_shot
from keras_clip.evaluation.embedding import embed_pairs


def evaluate(model, tokenizer, folder=None, captions=None, templates=zero_shot.TEMPLATES,
             batch_size=64):
    """A report dict: zero-shot metrics for `folder`, retrieval for `captions`.

    Args:
        model: a `CLIPModel`.
        tokenizer: a `CLIPTokenizer` matching the model's text tower.
        folder: optional class folder (see `image_folder.read_image_folder`).
        captions: optional glob of keras_clip TFRecords (first caption of each
            record; evaluation preprocessing).
    """
    if folder is None and captions is None:
        raise ValueError("Nothing to evaluate: give a class folder and/or caption shards.")
    report = {}
    if folder is not None:
        from keras_clip.evaluation.image_folder import image_folder_dataset

        dataset, listing, stats = image_folder_dataset(
            folder, model.image_size, batch_size, **model.preprocessing.evaluation_options)
        names = listing.class_names
        classifier = zero_shot.zero_shot_classifier(model, tokenizer, names, templates)
        metrics = zero_shot.evaluate_zero_shot(model, classifier, dataset)
        counts = stats.as_dict()
        report["zero_shot"] = {
            "top1": metrics["top1"], "top5": metrics["top5"], "images": metrics["count"],
            "chance": 1 / len(names), "classes": names,
            "empty_classes": listing.empty_classes,
            "unreadable_images": counts["examples_skipped"],
            "ignored_files": listing.ignored_files,
            "confusion_matrix": metrics["confusion_matrix"].tolist(),
        }
    if captions is not None:
        from keras_clip.data.dataset import make_dataset

        dataset = make_dataset(captions, preprocessing=model.preprocessing,
                               batch_size=batch_size, training=False, tokenizer=tokenizer,
                               drop_remainder=False,
                               trim_token_ids=model.text_encoder.accepts_trimmed_token_ids)
        images, texts = embed_pairs(model, dataset)
        report["retrieval"] = retrieval.retrieval_metrics(images, texts)
        report["retrieval"]["pairs"] = len(images)
        report["retrieval"]["skipped"] = dataset.stats.as_dict()["examples_skipped"]
    return report
