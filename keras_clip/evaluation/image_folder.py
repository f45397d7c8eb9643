"""Labelled images from a folder with one sub-folder per class."""

import os

import tensorflow as tf

from keras_clip.data import image_ops
from keras_clip.data.dataset import DatasetStats

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp")


def read_image_folder(root):
    """`(paths, labels, class_names, empty_classes)` of `root/<class>/<image>`.

    Class names are the folder names with `_` read as spaces (any script is
    fine). A class folder without images stays a class (the classifier
    still knows it) and is reported in `empty_classes`.
    """
    if not os.path.isdir(root):
        raise FileNotFoundError(f"No image folder at {root!r}.")
    folders = sorted(d for d in os.listdir(root)
                     if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))
    if not folders:
        raise ValueError(f"{root!r} has no class sub-folders (expected root/<class>/<image>).")
    paths, labels, empty = [], [], []
    for label, folder in enumerate(folders):
        files = sorted(f for f in os.listdir(os.path.join(root, folder))
                       if f.lower().endswith(IMAGE_SUFFIXES) and not f.startswith("."))
        if not files:
            empty.append(folder.replace("_", " "))
        paths += [os.path.join(root, folder, f) for f in files]
        labels += [label] * len(files)
    return paths, labels, [f.replace("_", " ") for f in folders], empty


def image_folder_dataset(root, image_size, batch_size=64):
    """Evaluation batches `{"images", "labels"}` of a class folder.

    Returns `(dataset, class_names, empty_classes, stats)`. Images that
    cannot be decoded are skipped and counted in `stats` (a `DatasetStats`:
    `records_read - examples_delivered` after iterating).
    """
    paths, labels, class_names, empty = read_image_folder(root)
    stats = DatasetStats(len(paths))
    dataset = tf.data.Dataset.from_tensor_slices((paths, tf.constant(labels, tf.int32)))

    def load(path, label):
        with tf.control_dependencies([stats.records_read.assign_add(1)]):
            image_bytes = tf.io.read_file(path)
        return {"images": image_ops.preprocess_for_eval(image_bytes, image_size),
                "labels": label}

    def count(example):
        with tf.control_dependencies([stats.examples_delivered.assign_add(1)]):
            return {key: tf.identity(value) for key, value in example.items()}

    dataset = (dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors()
               .map(count).batch(batch_size).prefetch(tf.data.AUTOTUNE))
    return dataset, class_names, empty, stats
