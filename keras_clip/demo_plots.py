"""Pictures of a demo run (needs matplotlib; skipped cleanly without it)."""

import os

import keras
import numpy as np


def save_all(output_dir, history, model, tokenizer, splits, query_images):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("  (no pictures: `pip install matplotlib` to get curves and a "
              "similarity matrix)")
        return []
    from keras_clip.demo import QUERY, image_embeddings

    paths = []
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    steps = np.arange(1, len(history["loss"]) + 1)
    axes[0].plot(steps, history["loss"], marker="o")
    axes[0].set(title="contrastive loss", xlabel="checkpoint interval")
    axes[1].plot(steps, history["logit_scale"], marker="o", color="tab:orange")
    axes[1].set(title="logit scale (1 / temperature)", xlabel="checkpoint interval")
    paths.append(_save(figure, output_dir, "curves.png"))

    data = splits["validation"]
    images, captions = data["images"][:8], data["captions"][:8]
    texts = keras.ops.convert_to_numpy(model.encode_text(tokenizer(captions)))
    similarity = image_embeddings(model, images) @ texts.T
    figure, axes = plt.subplots(2, 1, figsize=(8, 8.5), height_ratios=(1, 7))
    axes[0].imshow(np.concatenate(list(images), axis=1))
    axes[0].axis("off")
    axes[1].imshow(similarity, cmap="viridis")
    axes[1].set_yticks(range(8), captions, fontsize=8)
    axes[1].set_xticks(range(8), [f"image {i + 1}" for i in range(8)], fontsize=8)
    axes[1].set_title("cosine similarity, images (columns) × captions (rows)")
    for (row, column), value in np.ndenumerate(similarity):
        axes[1].text(column, row, f"{value:.2f}", ha="center", va="center", fontsize=7,
                     color="white")
    paths.append(_save(figure, output_dir, "similarity.png"))

    figure, axes = plt.subplots(1, len(query_images), figsize=(2 * len(query_images), 2.4))
    for rank, (axis, image) in enumerate(zip(np.atleast_1d(axes), query_images), 1):
        axis.imshow(image)
        axis.set_title(f"#{rank}")
        axis.axis("off")
    figure.suptitle(f"text→image: {QUERY!r}")
    paths.append(_save(figure, output_dir, "query.png"))
    print(f"  pictures: {', '.join(paths)}")
    return paths


def _save(figure, output_dir, name):
    import matplotlib.pyplot as plt

    path = os.path.join(output_dir, name)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
