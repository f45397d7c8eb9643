"""`keras-clip demo`: the whole system on the built-in shapes dataset.

Generates the dataset as TFRecords, trains a tiny CLIP with `train()`,
then measures what the paper measures: zero-shot classification of
colour–shape combinations never seen in training, and image–text retrieval,
each next to chance; answers one text→image query; saves the model and,
with matplotlib installed, pictures of the run.
"""

import json
import os
import time

import keras
import numpy as np

from keras_clip.data import shapes_dataset
from keras_clip.data.clip_tokenizer import CLIPTokenizer
from keras_clip.evaluation import retrieval_metrics, zero_shot
from keras_clip.evaluation.embedding import embed_batches, slices
from keras_clip.training import train

IMAGE_SIZE = 32
CONTEXT_LENGTH = 24
TEMPLATES = ("a {}.", "a picture of a {}.", "there is a {} in the middle.")
QUERY = "a large red square in the middle"  # a held-out combination


def architecture(vocabulary_size):
    """A tiny ViT CLIP for 32×32 images (about 0.3M parameters)."""
    width = {"hidden_dim": 64, "num_layers": 2, "num_heads": 2, "output_dim": 64}
    return {
        "image": ["VisionTransformer", {"image_size": IMAGE_SIZE, "patch_size": 8, **width}],
        "text": ["TextTransformer", {"vocabulary_size": vocabulary_size,
                                     "context_length": CONTEXT_LENGTH,
                                     "end_of_text_id": vocabulary_size - 1, **width}],
    }


def image_embeddings(model, images, batch_size=256):
    """uint8 images already at the model's size → `(N, D)` embeddings."""
    return embed_batches(lambda batch: model.encode_image(model.preprocessing.normalize(batch)),
                         slices(images, batch_size))


def run_demo(output_dir="keras_clip_demo", train_pairs=4000, steps=800, batch_size=128,
             seed=0, plots=True, export_dir="saved_models/demo", objective="contrastive"):
    """Runs the demo; prints a report and returns its numbers as a dict."""
    start = time.time()
    print(f"keras_clip demo on the {keras.backend.backend()} backend → {output_dir}/")
    splits = {
        "train": shapes_dataset.generate(train_pairs, "train", IMAGE_SIZE, seed),
        "validation": shapes_dataset.generate(300, "validation", IMAGE_SIZE, seed),
        "held_out": shapes_dataset.generate(300, "held_out", IMAGE_SIZE, seed),
    }
    tokenizer = CLIPTokenizer.train(splits["train"]["captions"], vocabulary_size=700,
                                    context_length=CONTEXT_LENGTH)
    tokenizer_dir = os.path.join(output_dir, "tokenizer")
    tokenizer.save_vocabulary(tokenizer_dir)
    print(f"1/4 writing {train_pairs} training pairs as TFRecords "
          f"(held out: {', '.join(' '.join(c) for c in shapes_dataset.held_out_combinations())})")
    pattern = shapes_dataset.write_tfrecords(
        splits["train"], os.path.join(output_dir, "data", "train"), tokenizer)

    print(f"2/4 training a tiny CLIP for {steps} steps of {batch_size} ({objective} objective)")
    result = train({
        "architecture": architecture(tokenizer.vocabulary_size()), "train_data": pattern,
        "tokenizer": tokenizer_dir, "recipe": "small", "batch_size": batch_size,
        "steps": steps, "checkpoint_every": max(1, steps // 10), "resume": False,
        "seed": seed, "output_dir": os.path.join(output_dir, "run"), "shuffle_buffer": 1024,
        "objective": objective,
    })
    model = result.model

    print("3/4 evaluating")
    report = evaluate(model, tokenizer, splits)
    report["objective"] = objective
    report["seconds"] = round(time.time() - start, 1)
    report["model"] = result.model_path
    print_report(report)
    with open(os.path.join(output_dir, "report.json"), "w") as file:
        json.dump(report, file, indent=2)

    print(f"4/4 text→image query {QUERY!r} and export:")
    pool = np.concatenate([splits["validation"]["images"], splits["held_out"]["images"]])
    pool_captions = splits["validation"]["captions"] + splits["held_out"]["captions"]
    query = keras.ops.convert_to_numpy(model.encode_text(tokenizer([QUERY])))[0]
    best = np.argsort(-(image_embeddings(model, pool) @ query))[:5]
    for rank, index in enumerate(best, 1):
        print(f"  {rank}. image whose caption is {pool_captions[index]!r}")
    if export_dir:
        from keras_clip.export import export_saved_model

        report["export"] = export_saved_model(
            model, tokenizer, export_dir, class_names=list(shapes_dataset.class_names()),
            templates=TEMPLATES)
        print(f"  exported for TF Serving: {report['export']} (classify, similarity, ...)")
        with open(os.path.join(output_dir, "report.json"), "w") as file:
            json.dump(report, file, indent=2)
    if plots:
        from keras_clip import demo_plots

        demo_plots.save_all(output_dir, result.history, model, tokenizer, splits, QUERY,
                            pool[best], [pool_captions[i] for i in best],
                            best >= len(splits["validation"]["images"]),
                            steps=steps, checkpoint_every=max(1, steps // 10))
    print(f"done in {time.time() - start:.0f} s; model: {result.model_path}")
    return report


def evaluate(model, tokenizer, splits):
    names = list(shapes_dataset.class_names())
    classifier = zero_shot.zero_shot_classifier(model, tokenizer, names, TEMPLATES)
    report = {}
    for split in ("held_out", "validation"):
        data = splits[split]
        metrics = zero_shot.evaluate_zero_shot(
            model, classifier,
            [{"images": model.preprocessing.normalize(data["images"]), "labels": data["labels"]}])
        report[f"zero_shot_{split}_top1"] = metrics["top1"]
    report["zero_shot_chance"] = 1 / len(names)
    data = splits["validation"]
    texts = keras.ops.convert_to_numpy(model.encode_text(tokenizer(data["captions"])))
    retrieval = retrieval_metrics(image_embeddings(model, data["images"]), texts)
    for key in ("text_to_image_R@1", "text_to_image_R@5", "image_to_text_R@5"):
        report[key] = retrieval[key]
    report["retrieval_R@5_chance"] = 5 / len(texts)
    return report


def print_report(report):
    chance = report["zero_shot_chance"]
    rows = [
        ("zero-shot top-1, held-out combinations", report["zero_shot_held_out_top1"], chance),
        ("zero-shot top-1, seen combinations", report["zero_shot_validation_top1"], chance),
        ("text→image R@1 (300 new captions)", report["text_to_image_R@1"], 1 / 300),
        ("text→image R@5", report["text_to_image_R@5"], report["retrieval_R@5_chance"]),
        ("image→text R@5", report["image_to_text_R@5"], report["retrieval_R@5_chance"]),
    ]
    print(f"  {'measure':42s} {'value':>7s} {'chance':>7s} {'× chance':>9s}")
    for name, value, base in rows:
        print(f"  {name:42s} {value:7.3f} {base:7.3f} {value / base:9.1f}")
