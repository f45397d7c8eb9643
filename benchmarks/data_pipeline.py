"""Training-input throughput: keras_clip's tf.data pipeline vs a PyTorch DataLoader.

Both read the same real JPEGs (crops of scikit-learn's sample photos
re-encoded at 500×375) with the same captions, and produce what a CLIP
training step consumes: a random resized crop (90–100% of the area, bicubic)
to 224×224, normalised with CLIP's mean/std, and 77 token ids per caption,
in batches of 64.

- keras_clip: `make_dataset` over TFRecords written by `write_tfrecords`
  (decode, augment, normalise and tokenize inside tf.data).
- baseline: the PyTorch way, PIL + torchvision-style transforms (crop, then
  PIL's antialiased bicubic resize, to tensor, normalise) and OpenCLIP's
  tokenizer in a `torch.utils.data.DataLoader` with 2 workers. torchvision
  itself cannot be installed beside the CPU build of torch used here, so the
  transforms are written out with the same PIL calls torchvision makes.

    python benchmarks/data_pipeline.py [--images 512] [--batches 24] [--json out.json]
"""

import argparse
import csv
import json
import math
import os
import platform
import random
import tempfile
import time

import numpy as np
import sklearn.datasets
from PIL import Image

MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)
SUBJECTS = ["dog", "cat", "red car", "old bridge", "mountain lake", "bowl of fruit",
            "child on a bicycle", "city street at night", "flower garden", "temple"]
STYLES = ["a photo of a {}.", "A close-up of the {}, taken in 2019", "my {} :)",
          "{} in the rain, seen from above", "Two people looking at a {} near the sea"]


def make_corpus(folder, count, seed=0):
    """`count` 500×375 JPEG crops of real photos and a captions.csv."""
    rng = random.Random(seed)
    photos = [Image.open(p).convert("RGB")
              for p in sklearn.datasets.load_sample_images().filenames]
    rows = []
    for i in range(count):
        photo = photos[i % len(photos)]
        left, top = rng.randint(0, photo.width - 500), rng.randint(0, photo.height - 375)
        name = f"{i:05d}.jpg"
        photo.crop((left, top, left + 500, top + 375)).save(
            os.path.join(folder, name), quality=90)
        rows.append((name, rng.choice(STYLES).format(rng.choice(SUBJECTS))))
    with open(os.path.join(folder, "captions.csv"), "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["filepath", "caption"])
        writer.writerows(rows)
    return rows


def measure(batches, num_batches, warmup=3):
    """Images/s over `num_batches` batches after `warmup` ones."""
    iterator = iter(batches)
    for _ in range(warmup):
        next(iterator)
    start, images = time.perf_counter(), 0
    for _ in range(num_batches):
        batch = next(iterator)
        images += int(batch["images"].shape[0])
    return images / (time.perf_counter() - start)


def keras_clip_pipeline(folder, batch_size):
    from keras_clip.data import caption_sources
    from keras_clip.data.clip_tokenizer import CLIPTokenizer
    from keras_clip.data.dataset import make_dataset
    from keras_clip.data.tfrecord_writer import write_tfrecords

    prefix = os.path.join(folder, "tfrecords", "train")
    write_tfrecords(caption_sources.read_caption_table(os.path.join(folder, "captions.csv")),
                    prefix, shard_size_mb=8, verbose=False)
    tokenizer = CLIPTokenizer.from_openai()
    dataset = make_dataset(prefix + "-*.tfrecord", image_size=224, batch_size=batch_size,
                           training=True, tokenizer=tokenizer, seed=0)
    return dataset.repeat().as_numpy_iterator()


class TorchCaptionDataset:
    """PIL + torchvision-style transforms + OpenCLIP tokenizer, per item."""

    def __init__(self, folder, rows, tokenizer_module):
        self.folder, self.rows = folder, rows
        self.tokenizer = tokenizer_module.SimpleTokenizer()

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, index):
        import torch

        name, caption = self.rows[index]
        image = Image.open(os.path.join(self.folder, name)).convert("RGB")
        top, left, height, width = self._crop_box(image.height, image.width)
        image = image.crop((left, top, left + width, top + height)).resize(
            (224, 224), Image.BICUBIC)
        pixels = (np.asarray(image, np.float32) / 255.0 - MEAN) / STD
        return {"images": torch.from_numpy(pixels.transpose(2, 0, 1).copy()),
                "token_ids": self.tokenizer([caption])[0]}

    @staticmethod
    def _crop_box(height, width, scale=(0.9, 1.0), ratio=(3 / 4, 4 / 3)):
        # torchvision's RandomResizedCrop.get_params: 10 tries, then fall back.
        area = height * width
        for _ in range(10):
            target = area * random.uniform(*scale)
            aspect = math.exp(random.uniform(math.log(ratio[0]), math.log(ratio[1])))
            w = int(round(math.sqrt(target * aspect)))
            h = int(round(math.sqrt(target / aspect)))
            if 0 < w <= width and 0 < h <= height:
                return random.randint(0, height - h), random.randint(0, width - w), h, w
        return 0, 0, height, width


def torch_pipeline(folder, rows, batch_size, workers):
    import torch

    from tests.data.clip_tokenizer_test import reference_tokenizer

    dataset = TorchCaptionDataset(folder, rows, reference_tokenizer())
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
        drop_last=True, persistent_workers=True, prefetch_factor=4)

    def forever():
        while True:
            yield from loader

    return forever()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batches", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        rows = make_corpus(folder, args.images)
        results = {
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
            "date": time.strftime("%Y-%m-%d"),
            "batch_size": args.batch_size,
            "batches_timed": args.batches,
        }
        results["keras_clip_images_per_s"] = measure(
            keras_clip_pipeline(folder, args.batch_size), args.batches)
        results["torch_dataloader_images_per_s"] = measure(
            torch_pipeline(folder, rows, args.batch_size, args.workers), args.batches)
    results["ratio"] = results["keras_clip_images_per_s"] / results["torch_dataloader_images_per_s"]
    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, "w") as file:
            json.dump(results, file, indent=2)


if __name__ == "__main__":
    main()
