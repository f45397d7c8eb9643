"""Pictures of a demo run (needs matplotlib; skipped cleanly without it).

Three PNGs: the training curves against optimizer steps, an image × caption
similarity matrix, and the text→image query's top images with their
captions, held-out colour–shape combinations framed.
"""

import math
import os
import textwrap

import keras
import numpy as np

HELD_OUT_COLOUR = "tab:red"
SEEN_COLOUR = "tab:gray"
MATCH_COLOUR = "tab:red"  # frames the matching image–caption pairs


def save_all(output_dir, history, model, tokenizer, splits, query, query_images,
             query_captions, query_held_out, *, steps, checkpoint_every):
    """Saves curves.png, similarity.png and query.png; returns their paths.

    `history` is `train()`'s Keras history: one value per fit "epoch" of
    `checkpoint_every` steps, `steps` in all. `query_held_out[i]` says
    whether `query_images[i]` shows a combination kept out of training;
    they are the best matches of the text `query`.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("  (no pictures: `pip install matplotlib` to get curves and a "
              "similarity matrix)")
        return []
    paths = [
        _save(plt, _curves(plt, history, steps, checkpoint_every, model.objective.name),
              output_dir, "curves.png"),
        _save(plt, _similarity(plt, model, tokenizer, splits["validation"]), output_dir,
              "similarity.png"),
        _save(plt, _query(plt, query, query_images, query_captions, query_held_out),
              output_dir, "query.png"),
    ]
    print(f"  pictures: {', '.join(paths)}")
    return paths


def logged_steps(count, steps, checkpoint_every):
    """The optimizer step at which each of `count` logged values was taken.

    One value per interval of `checkpoint_every` steps: interval k ends at
    step min((k + 1) * checkpoint_every, steps); a history shorter than the
    intervals (a resumed run) holds the last ones. One value per step: 1..steps.
    """
    intervals = math.ceil(steps / checkpoint_every)
    ends = np.minimum(np.arange(1, intervals + 1) * checkpoint_every, steps)
    if count <= len(ends):
        return ends[len(ends) - count:]
    if count == steps:
        return np.arange(1, steps + 1)
    raise ValueError(f"{count} logged values fit neither {len(ends)} intervals of "
                     f"{checkpoint_every} steps nor {steps} steps.")


def _curves(plt, history, steps, checkpoint_every, objective="contrastive"):
    """Loss and logit scale (1 / temperature) against optimizer steps."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
    panels = (("loss", f"{objective} loss (mean over each interval)", "tab:blue"),
              ("logit_scale", "logit scale (1 / temperature), at interval ends",
               "tab:orange"))
    for axis, (key, title, colour) in zip(axes, panels):
        values = history.get(key, [])
        axis.plot(logged_steps(len(values), steps, checkpoint_every), values, marker="o",
                  color=colour)
        axis.set(title=title, xlabel="step", xlim=(0, steps))
        axis.grid(alpha=0.3)
    return figure


def _similarity(plt, model, tokenizer, data, count=8):
    """The first `count` validation images (columns) against their captions (rows)."""
    images, captions = data["images"][:count], data["captions"][:count]
    texts = keras.ops.convert_to_numpy(model.encode_text(tokenizer(captions)))
    pixels = model.preprocessing.normalize(images)
    similarity = keras.ops.convert_to_numpy(model.encode_image(pixels)) @ texts.T
    figure, (strip, matrix) = plt.subplots(
        2, 1, figsize=(10, 9.5), height_ratios=(1, count), sharex=True, layout="constrained")
    # The thumbnails sit above their columns: one unit of x per image.
    strip.imshow(np.concatenate(list(images), axis=1), extent=(-0.5, count - 0.5, 0, 1),
                 interpolation="nearest")
    strip.set_axis_off()
    shown = matrix.imshow(similarity, cmap="viridis", aspect="auto")
    labels = [textwrap.fill(f"{i + 1}. {caption}", 40, subsequent_indent="    ")
              for i, caption in enumerate(captions)]
    matrix.set_yticks(range(count), labels, fontsize=10)
    matrix.set_xticks(range(count), [f"image {i + 1}" for i in range(count)], fontsize=10)
    matrix.set_title("cosine similarity: images (columns) × captions (rows); "
                     "framed: the matching pairs", fontsize=11)
    low, high = similarity.min(), similarity.max()
    digits = 2 if high - low >= 0.1 else 3  # an untrained model's values differ little
    for (row, column), value in np.ndenumerate(similarity):
        matrix.text(column, row, f"{value:.{digits}f}", ha="center", va="center", fontsize=9,
                    color="black" if value > (low + high) / 2 else "white")
    for i in range(count):
        matrix.add_patch(plt.Rectangle((i - 0.45, i - 0.45), 0.9, 0.9, fill=False,
                                       edgecolor=MATCH_COLOUR, linewidth=2.5))
    figure.colorbar(shown, ax=matrix, shrink=0.8, label="cosine similarity")
    return figure


def _query(plt, query, images, captions, held_out):
    """The top images for `query`, each with its caption; held-out ones framed."""
    from matplotlib.patches import Patch

    count = len(images)
    figure, axes = plt.subplots(1, count, figsize=(2.6 * count, 4.2), layout="constrained")
    for rank, (axis, image, caption, unseen) in enumerate(
            zip(np.atleast_1d(axes), images, captions, held_out), 1):
        axis.imshow(image, interpolation="nearest")
        axis.set_xticks([])
        axis.set_yticks([])
        colour = HELD_OUT_COLOUR if unseen else SEEN_COLOUR
        for spine in axis.spines.values():
            spine.set(edgecolor=colour, linewidth=5 if unseen else 1.5)
        axis.set_title(f"#{rank}" + (" · held out" if unseen else ""), fontsize=12,
                       color=colour if unseen else "black",
                       fontweight="bold" if unseen else "normal")
        axis.set_xlabel(textwrap.fill(caption, 26), fontsize=10)
    figure.get_layout_engine().set(w_pad=0.15)  # frames apart
    figure.suptitle(f"text→image query: {query!r}" + _held_out_note(query), fontsize=13)
    figure.legend(handles=[
        Patch(facecolor="none", edgecolor=HELD_OUT_COLOUR, linewidth=3,
              label="held-out colour–shape combination (never trained on)"),
        Patch(facecolor="none", edgecolor=SEEN_COLOUR, linewidth=1.5,
              label="combination seen in training"),
    ], loc="outside lower center", ncols=2, fontsize=10, frameon=False)
    return figure


def _held_out_note(text):
    """' (a held-out combination)' when `text` names one, else ''."""
    from keras_clip.data import shapes_dataset

    words = set(text.lower().replace(".", " ").replace(",", " ").split())
    named = any({colour, shape} <= words
                for colour, shape in shapes_dataset.held_out_combinations())
    return " (a held-out combination)" if named else ""


def _save(plt, figure, output_dir, name):
    path = os.path.join(output_dir, name)
    figure.savefig(path, dpi=110, bbox_inches="tight", pad_inches=0.15)
    plt.close(figure)
    return path
