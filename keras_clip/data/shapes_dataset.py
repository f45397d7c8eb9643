"""A built-in image–caption dataset: procedurally drawn scenes of shapes.

Each image shows one or two shapes (circle, square, triangle, diamond) in
one of six colours, small or large, at one of five places, on a varied
background with pixel noise; its captions say so in varied sentences. A
fixed set of colour–shape *combinations* (one per colour, every shape
still seen in others) never appears in training, so zero-shot accuracy on
them measures whether the model composed "red" and "triangle" from
separate experience, not whether it memorised pairs. Nothing is
downloaded; the same seed draws the same dataset.
"""

import dataclasses
import re

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "diamond")
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (50, 80, 220),
    "yellow": (235, 210, 40),
    "purple": (140, 60, 170),
    "orange": (245, 140, 30),
}
SIZES = {"small": 0.22, "large": 0.42}  # radius as a fraction of the side
PLACES = {
    "on the left": (0.27, 0.5),
    "on the right": (0.73, 0.5),
    "at the top": (0.5, 0.27),
    "at the bottom": (0.5, 0.73),
    "in the middle": (0.5, 0.5),
}
CAPTIONS = (
    "a {size} {colour} {shape} {place}.",
    "a {colour} {shape} {place}",
    "there is a {size} {colour} {shape} {place}.",
    "a picture of a {colour} {shape}.",
    "{colour} {shape}, {size}, {place}",
    "a {shape} that is {colour}, {place}.",
)
PAIR_CAPTIONS = (
    "a {a} and a {b}.",
    "a {a} {place_a} and a {b} {place_b}.",
    "two shapes: a {a} and a {b}",
)


def held_out_combinations():
    """The colour–shape pairs kept out of training: one per colour."""
    return tuple(
        (colour, SHAPES[(i + 1) % len(SHAPES)]) for i, colour in enumerate(COLOURS)
    )


def class_names():
    """All colour–shape combinations as class names, e.g. `"red circle"`."""
    return tuple(f"{colour} {shape}" for colour in COLOURS for shape in SHAPES)


@dataclasses.dataclass
class ShapeObject:
    colour: str
    shape: str
    size: str
    place: str

    @property
    def name(self):
        return f"{self.colour} {self.shape}"


def draw_scene(objects, image_size, rng):
    """An `(S, S, 3)` uint8 image of `objects` on a random background."""
    base = rng.integers(0, 90, 3) if rng.random() < 0.5 else rng.integers(170, 256, 3)
    gradient = np.linspace(-25, 25, image_size)[:, None, None] * rng.choice([-1, 1])
    background = np.clip(base[None, None, :] + gradient, 0, 255)
    image = Image.fromarray(np.broadcast_to(background, (image_size, image_size, 3))
                            .astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for obj in objects:
        x, y = PLACES[obj.place]
        jitter = rng.uniform(-0.06, 0.06, 2)
        cx, cy = (x + jitter[0]) * image_size, (y + jitter[1]) * image_size
        r = SIZES[obj.size] * image_size * rng.uniform(0.85, 1.1) / 2
        colour = tuple(int(c) for c in np.clip(
            np.array(COLOURS[obj.colour]) + rng.integers(-20, 21, 3), 0, 255))
        if obj.shape == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
        elif obj.shape == "square":
            draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=colour)
        elif obj.shape == "triangle":
            draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
        else:
            draw.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)],
                         fill=colour)
    pixels = np.asarray(image, np.float32) + rng.normal(0, 8, (image_size, image_size, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def caption(objects, rng):
    if len(objects) == 1:
        (obj,) = objects
        template = CAPTIONS[rng.integers(len(CAPTIONS))]
        text = template.format(size=obj.size, colour=obj.colour, shape=obj.shape,
                               place=obj.place)
    else:
        a, b = objects
        template = PAIR_CAPTIONS[rng.integers(len(PAIR_CAPTIONS))]
        text = template.format(a=a.name, b=b.name, place_a=a.place, place_b=b.place)
    return re.sub(r"\ba (?=[aeiou])", "an ", text)  # "an orange square"


def _random_object(rng, combinations, place):
    colour, shape = combinations[rng.integers(len(combinations))]
    return ShapeObject(colour, shape, str(rng.choice(list(SIZES))), place)


def generate(count, split="train", image_size=32, seed=0):
    """`count` examples of a split: `{"images", "captions", "labels"}`.

    Splits: `"train"` (one or two shapes, never a held-out combination),
    `"validation"` (new single-shape scenes of the training combinations),
    `"held_out"` (single shapes of the held-out combinations only). `labels`
    index `class_names()` (single-shape scenes; -1 for two-shape ones).
    """
    if split not in ("train", "validation", "held_out"):
        raise ValueError(f"Unknown split {split!r}: train, validation or held_out.")
    offsets = {"train": 0, "validation": 1, "held_out": 2}
    rng = np.random.default_rng([seed, offsets[split]])
    held_out = set(held_out_combinations())
    all_combinations = [(c, s) for c in COLOURS for s in SHAPES]
    combinations = [pair for pair in all_combinations
                    if (pair in held_out) == (split == "held_out")]
    names = class_names()
    images = np.empty((count, image_size, image_size, 3), np.uint8)
    captions, labels = [], []
    for i in range(count):
        places = list(PLACES)
        if split == "train" and rng.random() < 0.3:
            first, second = rng.choice([0, 1]), rng.choice([2, 3])  # left/right, top/bottom
            objects = [_random_object(rng, combinations, places[first]),
                       _random_object(rng, combinations, places[second])]
            labels.append(-1)
        else:
            objects = [_random_object(rng, combinations, places[rng.integers(len(places))])]
            labels.append(names.index(objects[0].name))
        images[i] = draw_scene(objects, image_size, rng)
        captions.append(caption(objects, rng))
    return {"images": images, "captions": captions, "labels": np.array(labels, np.int32)}


def write_tfrecords(examples, prefix, tokenizer=None, num_shards=2, verbose=True):
    """Writes `generate()` output as keras_clip TFRecord shards with sidecars.

    Images are stored as PNG (lossless). With a `tokenizer`, each record
    also stores its caption's token ids, so training need not tokenize.
    Returns the shards' glob pattern.
    """
    import io

    import keras

    from keras_clip.data import tfrecord_schema
    from keras_clip.data.shard_writer import write_shards

    count = len(examples["captions"])
    token_ids = None if tokenizer is None else np.asarray(tokenizer(examples["captions"]))
    progress = keras.utils.Progbar(count, unit_name="pair") if verbose else None

    def records():
        for i in range(count):
            png = io.BytesIO()
            Image.fromarray(examples["images"][i]).save(png, "PNG")
            ids = None if token_ids is None else token_ids[i : i + 1]
            yield tfrecord_schema.serialize_example(
                png.getvalue(), [examples["captions"][i]], key=str(i), token_ids=ids)
            if progress is not None:
                progress.add(1)

    return write_shards(records(), prefix, count, num_shards)
