"""Labelled images from a folder with one sub-folder per class."""

import collections
import os

import tensorflow as tf

from keras_clip import files
from keras_clip.data import image_ops
from keras_clip.data.dataset import DatasetStats
from keras_clip.preprocessing import CLIP_MEAN, CLIP_STD

# What TensorFlow decodes (GIF: its first frame). Other files are counted
# in `ignored_files`, never silently dropped.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp")

ImageFolder = collections.namedtuple(
    "ImageFolder", ["paths", "labels", "class_names", "empty_classes", "ignored_files"])
ImageFolder.__doc__ = """A class folder as listed: image `paths` with their `labels`
(indices into `class_names`), classes without images, and `ignored_files`
(`{extension: count}` of files that are not images TensorFlow decodes)."""


def read_image_folder(root):
    """An `ImageFolder` of `root/<class>/<image>`.

    Class names are the folder names with `_` read as spaces (any script is
    fine). A class folder without images stays a class (the classifier
    still knows it) and is reported in `empty_classes`; a folder with no
    image at all is an error.
    """
    if not files.isdir(root):
        raise FileNotFoundError(f"No image folder at {root!r}.")
    folders = sorted(d for d in files.listdir(root)
                     if files.isdir(files.join(root, d)) and not d.startswith("."))
    if not folders:
        raise ValueError(f"{root!r} has no class sub-folders (expected root/<class>/<image>).")
    paths, labels, empty, ignored = [], [], [], collections.Counter()
    for label, folder in enumerate(folders):
        names = sorted(f for f in files.listdir(files.join(root, folder))
                       if not f.startswith(".")
                       and files.isfile(files.join(root, folder, f)))
        images = [f for f in names if f.lower().endswith(IMAGE_SUFFIXES)]
        ignored.update(os.path.splitext(f)[1].lower() or "(no extension)"
                       for f in names if f not in images)
        if not images:
            empty.append(folder.replace("_", " "))
        paths += [files.join(root, folder, f) for f in images]
        labels += [label] * len(images)
    if not paths:
        found = f" (only {dict(ignored)})" if ignored else ""
        raise ValueError(f"{root!r} holds no images of {', '.join(IMAGE_SUFFIXES)} in its "
                         f"class folders{found}.")
    return ImageFolder(paths, labels, [f.replace("_", " ") for f in folders], empty,
                       dict(ignored))


def image_folder_dataset(root, image_size, batch_size=64, mean=CLIP_MEAN, std=CLIP_STD,
                         resize="shortest_side_then_center_crop"):
    """Evaluation batches `{"images", "labels"}` of a class folder.

    Images are resized by `resize` and normalised with `mean` and `std`
    (the model's record: `**model.preprocessing.evaluation_options`).

    Returns `(dataset, folder, stats)`: `folder` is the `ImageFolder`.
    Images that cannot be decoded are skipped and counted in `stats` (a
    `DatasetStats`: `records_read - examples_delivered` after iterating).
    """
    folder = read_image_folder(root)
    stats = DatasetStats(len(folder.paths))
    dataset = tf.data.Dataset.from_tensor_slices(
        (tf.constant(folder.paths, tf.string), tf.constant(folder.labels, tf.int32)))

    def load(path, label):
        with tf.control_dependencies([stats.records_read.assign_add(1)]):
            image_bytes = tf.io.read_file(path)
        return {"images": image_ops.preprocess_for_eval(image_bytes, image_size,
                                                        mean=mean, std=std, resize=resize),
                "labels": label}

    def count(example):
        with tf.control_dependencies([stats.examples_delivered.assign_add(1)]):
            return {key: tf.identity(value) for key, value in example.items()}

    dataset = (dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors()
               .map(count).batch(batch_size).prefetch(tf.data.AUTOTUNE))
    return dataset, folder, stats
