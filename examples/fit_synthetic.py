"""Train a CLIP with plain `model.fit`, the way a Keras user writes it.

No `loss=`: CLIPModel computes its symmetric contrastive loss itself. The
data here are random pairs made in memory; swap in any `tf.data.Dataset`
(or NumPy dict) that yields `{"images", "token_ids"}` batches.

    python examples/fit_synthetic.py                 # TensorFlow
    KERAS_BACKEND=jax python examples/fit_synthetic.py
"""

import argparse

import keras

from keras_clip import CLIPModel
from keras_clip.data import synthetic_pairs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny-vit")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    model = CLIPModel.from_preset(args.preset)
    pairs = synthetic_pairs(
        8 * args.batch_size, model.image_size, model.context_length
    )
    model.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=0.2))
    model.fit(pairs, batch_size=args.batch_size, epochs=args.epochs)

    # Unit-norm embeddings: cosine similarity is a dot product.
    image_embeddings = model.encode_image(pairs["images"][:4])
    text_embeddings = model.encode_text(pairs["token_ids"][:4])
    print(keras.ops.matmul(image_embeddings, keras.ops.transpose(text_embeddings)))


if __name__ == "__main__":
    main()
