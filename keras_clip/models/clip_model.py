"""CLIPModel: two towers, a learned temperature, and the contrastive loss."""

import math
import os

import keras
from keras import ops

from keras_clip.layers.logit_scale_constraint import LogitScaleConstraint
from keras_clip.losses.contrastive_loss import (
    contrastive_logits,
    contrastive_loss,
    top1_hits,
)
from keras_clip.losses.cross_replica import gather_across_replicas
from keras_clip.models import clip_presets


@keras.saving.register_keras_serializable(package="keras_clip")
class CLIPModel(keras.Model):
    """Contrastive Language–Image Pre-training (Radford et al., 2021).

    Maps `{"images", "token_ids"}` to L2-normalised `{"image_embeddings",
    "text_embeddings"}`. Training needs no `loss=`: `compute_loss` scores the
    batch's `N × N` similarities `exp(logit_scale) · img @ txtᵀ` with the
    symmetric cross-entropy (each image must pick its caption, each caption
    its image), gathering embeddings across `tf.distribute` replicas so the
    negatives are the global batch. `logit_scale` starts at `log(1 / 0.07)`
    and a constraint keeps it in `[0, log(100)]` after every update. In-batch
    top-1 accuracies are reported as metrics.

    Args:
        image_encoder: an image tower (`VisionTransformer`, `ModifiedResNet`).
        text_encoder: a text tower (`TextTransformer`, `BagOfWordsEncoder`)
            with the same `output_dim`.
        logit_scale_init: float. Initial log logit scale.
        max_logit_scale: float. Upper bound of the log logit scale.

    Example:
    >>> model = CLIPModel.from_preset("tiny-vit")
    >>> model.compile(optimizer="adamw")
    >>> model.fit(dataset)  # batches of {"images", "token_ids"}
    >>> model.encode_image(images).shape  # unit-norm rows
    (8, 64)
    """

    #: Names `from_preset` builds: the paper's nine, then the tiny ones.
    presets = tuple(clip_presets.PRESETS)

    def __init__(
        self,
        image_encoder,
        text_encoder,
        logit_scale_init=math.log(1 / 0.07),
        max_logit_scale=math.log(100.0),
        **kwargs,
    ):
        if image_encoder.output_dim != text_encoder.output_dim:
            raise ValueError(
                f"The towers must share an embedding width: the image encoder "
                f"outputs {image_encoder.output_dim}, the text encoder "
                f"{text_encoder.output_dim}."
            )
        # === Layers ===
        # Normalise (and so compute the loss) in float32 under mixed precision.
        image_normalization = keras.layers.UnitNormalization(
            dtype="float32", name="image_embeddings"
        )
        text_normalization = keras.layers.UnitNormalization(
            dtype="float32", name="text_embeddings"
        )

        # === Functional Model ===
        inputs = {
            "images": keras.Input(image_encoder.input_shape[1:], name="images"),
            "token_ids": keras.Input((None,), dtype="int32", name="token_ids"),
        }
        outputs = {
            "image_embeddings": image_normalization(
                image_encoder(inputs["images"])
            ),
            "text_embeddings": text_normalization(
                text_encoder(inputs["token_ids"])
            ),
        }
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        # Keras layers on torch can't be attributes before Model.__init__.
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        self.image_normalization = image_normalization
        self.text_normalization = text_normalization

        # === Weights ===
        self.logit_scale = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(logit_scale_init),
            constraint=LogitScaleConstraint(0.0, max_logit_scale),
            dtype="float32",
            name="logit_scale",
        )

        # === Metrics ===
        self.image_to_text_accuracy = keras.metrics.Mean(name="image_to_text_accuracy")
        self.text_to_image_accuracy = keras.metrics.Mean(name="text_to_image_accuracy")

        # === Config ===
        self.logit_scale_init = logit_scale_init
        self.max_logit_scale = max_logit_scale

    @property
    def embedding_dim(self):
        return self.image_encoder.output_dim

    @property
    def context_length(self):
        return self.text_encoder.context_length

    @property
    def image_size(self):
        return self.image_encoder.image_size

    def encode_image(self, images, training=False):
        """`(B, H, W, 3)` preprocessed images → `(B, D)` unit-norm embeddings."""
        return self.image_normalization(self.image_encoder(images, training=training))

    def encode_text(self, token_ids, training=False):
        """`(B, T)` token ids → `(B, D)` unit-norm embeddings."""
        return self.text_normalization(self.text_encoder(token_ids, training=training))

    def similarity(self, images, token_ids):
        """`(B_images, B_texts)` logits: `exp(logit_scale) · img @ txtᵀ`."""
        scale = ops.exp(self.logit_scale)
        image_embeddings = self.encode_image(images)
        text_embeddings = self.encode_text(token_ids)
        return scale * ops.matmul(image_embeddings, ops.transpose(text_embeddings))

    def compile(self, optimizer="adamw", loss=None, **kwargs):
        if loss is not None:
            raise ValueError(
                "CLIPModel computes its contrastive loss itself; call compile() "
                "without `loss=`."
            )
        super().compile(optimizer=optimizer, **kwargs)

    def compile_from_config(self, config):
        # Keras skips compiling a loaded model whose compile() is overridden;
        # ours only refuses `loss=`, which a saved config holds as None.
        config = keras.saving.deserialize_keras_object(config)
        config.pop("loss", None)
        self.compile(**config)
        self.optimizer.build(self.trainable_variables)

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        image_embeddings = y_pred["image_embeddings"]
        text_embeddings = y_pred["text_embeddings"]
        all_image, all_text, row_offset, num_replicas = gather_across_replicas(
            image_embeddings, text_embeddings
        )
        logits_per_image, logits_per_text, labels = contrastive_logits(
            image_embeddings,
            text_embeddings,
            self.logit_scale,
            all_image,
            all_text,
            row_offset,
        )
        self.image_to_text_accuracy.update_state(top1_hits(logits_per_image, labels))
        self.text_to_image_accuracy.update_state(top1_hits(logits_per_text, labels))
        loss = contrastive_loss(logits_per_image, logits_per_text, labels)
        if self.losses:
            loss = loss + ops.cast(ops.sum(self.losses), loss.dtype)
        # Each replica's loss is its rows' mean; the optimizer sums replicas'
        # gradients, so dividing here makes the update the global mean's.
        return loss / num_replicas

    @classmethod
    def from_preset(cls, preset, dtype=None):
        """Builds a preset architecture (random weights) or loads a saved model.

        Args:
            preset: str. A name in `CLIPModel.presets` (e.g. `"ViT-B/32"`),
                the path of a `.keras` file saved from a `CLIPModel`, or a
                preset directory holding one as `model.keras` (what
                `keras-clip convert` writes).
            dtype: optional dtype policy for the towers (e.g.
                `"mixed_bfloat16"`); ignored when loading a file.
        """
        if preset in clip_presets.PRESETS:
            image_encoder, text_encoder = clip_presets.build_towers(preset, dtype)
            return cls(image_encoder, text_encoder, name=clip_presets.model_name(preset))
        if os.path.isdir(preset) or (preset.endswith(".keras") and os.path.exists(preset)):
            from keras_clip.models.loading import load_model

            return load_model(preset)
        raise ValueError(
            f"Unknown CLIP preset {preset!r}. Available presets: "
            f"{', '.join(clip_presets.PRESETS)}; or the path of a .keras file or "
            f"of a directory with model.keras."
        )

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "image_encoder": keras.saving.serialize_keras_object(self.image_encoder),
            "text_encoder": keras.saving.serialize_keras_object(self.text_encoder),
            "logit_scale_init": self.logit_scale_init,
            "max_logit_scale": self.max_logit_scale,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("image_encoder", "text_encoder"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
