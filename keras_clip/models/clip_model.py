"""CLIPModel: two towers and the objective that trains them."""


from collections.abc import Mapping

import keras
import numpy as np
from keras import ops

from keras_clip.losses.contrastive_objective import ContrastiveObjective
from keras_clip.losses.objectives import get_objective
from keras_clip.models import cached_gradients, clip_presets
from keras_clip.models.cached_gradients import check_accumulation_steps
from keras_clip.preprocessing import Preprocessing


@keras.saving.register_keras_serializable(package="keras_clip")
class CLIPModel(keras.Model):
    """Contrastive Language–Image Pre-training (Radford et al., 2021).

    Maps `{"images", "token_ids"}` to L2-normalised `{"image_embeddings",
    "text_embeddings"}`. Images are float inputs already normalised, or
    uint8 pixels, which the model normalises with its `preprocessing`
    record (`normalize_pixels`) where they enter the towers: inside a
    training step, so a batch travels at a byte per value. Training needs
    no `loss=`: `compute_loss` hands the batch's embeddings to the
    objective. The default is CLIP's
    (`ContrastiveObjective`): the symmetric cross-entropy over the batch's
    `N × N` similarities `exp(logit_scale) · img @ txtᵀ`, gathered across
    `tf.distribute` replicas so the negatives are the global batch, with a
    learned temperature `logit_scale` (started at `log(1 / 0.07)`, kept in
    `[0, log(100)]`). The objective's in-batch metrics (top-1 accuracies)
    are reported as metrics, and its weights are the model's attributes
    (`model.logit_scale`). A loaded model is compiled with `jit_compile`
    resolved anew by the backend that loads it (Keras saves the saving
    backend's resolution, which another backend should not inherit).

    Args:
        image_encoder: an `ImageEncoder` (`VisionTransformer`,
            `ModifiedResNet`).
        text_encoder: a `TextEncoder` (`TextTransformer`,
            `BagOfWordsEncoder`) with the same `output_dim`.
        objective: a name in `keras_clip.losses.OBJECTIVES` (`"contrastive"`,
            CLIP's; `"sigmoid"`, SigLIP's pairwise loss with a learned scale
            and bias, `model.logit_bias`) or an `Objective`.
        preprocessing: the `Preprocessing` record (or its dict) of the
            inputs the towers were trained on; default: CLIP's mean and std
            at the towers' image size and context length. Saved with the
            model; the data pipeline, export and evaluation read it.
        accumulation_steps: int. Each training batch (each replica's part
            of it) is split into this many micro-batches that take one
            exact optimizer step together, the negatives still being the
            whole global batch (cached-gradient accumulation, see
            `models/cached_gradients.py`): memory follows the micro-batch,
            time one more forward pass. Batches must split evenly.
        logit_scale_init, max_logit_scale: as in keras_clip 0.1, the same
            as `objective=ContrastiveObjective(logit_scale_init, ...)`.

    Example:
    >>> from keras_clip.data.synthetic_pairs import synthetic_pairs
    >>> model = CLIPModel.from_preset("tiny-vit")
    >>> model.compile(optimizer="adamw")
    >>> pairs = synthetic_pairs(16)  # {"images", "token_ids"}
    >>> history = model.fit(pairs, batch_size=8, verbose=0)
    >>> tuple(model.encode_image(pairs["images"][:8]).shape)  # unit-norm rows
    (8, 64)
    """

    #: Names `from_preset` builds: the paper's nine, then the tiny ones.
    presets = tuple(clip_presets.PRESETS)

    def __init__(
        self,
        image_encoder,
        text_encoder,
        objective="contrastive",
        preprocessing=None,
        accumulation_steps=1,
        **kwargs,
    ):
        objective = get_objective(_with_0_1_arguments(objective, kwargs))
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
        # The objective's (the temperature: `self.logit_scale`), as attributes
        # named like them, so files saved before objectives existed load.
        for name, weight in objective.create_weights(self).items():
            setattr(self, name, weight)

        # === Metrics ===
        for name in objective.metric_names:
            setattr(self, name, keras.metrics.Mean(name=name))

        # === Config ===
        self.objective = objective
        self.preprocessing = preprocessing
        self.accumulation_steps = accumulation_steps

    @property
    def preprocessing(self):
        """The `Preprocessing` record of this model's inputs."""
        return self._preprocessing

    @preprocessing.setter
    def preprocessing(self, record):
        if record is None:
            record = Preprocessing(self.image_size, self.context_length)
        elif isinstance(record, dict):
            record = Preprocessing.from_dict(record)
        if (record.image_size, record.context_length) != (self.image_size, self.context_length):
            raise ValueError(
                f"A preprocessing record for {record.image_size}-pixel images and "
                f"{record.context_length} tokens does not fit towers reading "
                f"{self.image_size} pixels and {self.context_length} tokens."
            )
        if record.pad_id != self.text_encoder.padding_id:
            raise ValueError(
                f"The text tower takes id {self.text_encoder.padding_id} for padding, but "
                f"its inputs are padded with {record.pad_id} (the preprocessing record)."
            )
        self._preprocessing = record
        # Its mean and std are constants of the traced steps (uint8 images).
        self.train_function = self.test_function = self.predict_function = None

    @property
    def accumulation_steps(self):
        """Micro-batches per training batch (1: none; see `models/cached_gradients.py`)."""
        return self._accumulation_steps

    @accumulation_steps.setter
    def accumulation_steps(self, steps):
        check_accumulation_steps(steps)
        if steps > 1:
            cached_gradients.check_objective(self.objective)
        self._accumulation_steps = steps
        # Keras keeps the step functions it traced; they would keep the old split.
        self.train_function = self.test_function = None

    @property
    def embedding_dim(self):
        return self.image_encoder.output_dim

    @property
    def context_length(self):
        return self.text_encoder.context_length

    @property
    def image_size(self):
        return self.image_encoder.image_size

    @property
    def objective_weights(self):
        """The objective's weights by name (`{"logit_scale": ...}`)."""
        return {name: getattr(self, name) for name in self.objective.weight_names}

    @property
    def head_variables(self):
        """What keeps the full rate under a tower learning-rate scale.

        Each tower's declared head (its projection into the joint space)
        and the objective's weights.
        """
        return [
            *self.image_encoder.head_variables,
            *self.text_encoder.head_variables,
            *self.objective_weights.values(),
        ]

    def call(self, inputs, training=None, mask=None):
        if isinstance(inputs, Mapping) and "images" in inputs:
            inputs = {**inputs, "images": self.normalize_pixels(inputs["images"])}
        return super().call(inputs, training=training, mask=mask)

    def normalize_pixels(self, images):
        """uint8 `[0, 255]` pixels → the towers' inputs, `(x / 255 − mean) / std`.

        The mean and std are the `preprocessing` record's; float images are
        taken as normalised already and returned as given. Other integer
        images are refused: pixels are uint8.
        """
        if not hasattr(images, "dtype"):  # a list (tensors, arrays and symbols have one)
            images = ops.convert_to_tensor(images)
        dtype = keras.backend.standardize_dtype(images.dtype)
        if dtype != "uint8":
            if "int" in dtype or dtype == "bool":
                raise ValueError(
                    f"Images must be uint8 pixels or normalised floats, not {dtype}.")
            return images
        std = np.asarray(self.preprocessing.std, "float32")
        scale = ops.convert_to_tensor(1.0 / (255.0 * std))
        offset = ops.convert_to_tensor(-np.asarray(self.preprocessing.mean, "float32") / std)
        return ops.add(ops.multiply(ops.cast(images, "float32"), scale), offset)

    def encode_image(self, images, training=False):
        """`(B, H, W, 3)` preprocessed images or uint8 pixels → `(B, D)` unit-norm rows."""
        images = self.normalize_pixels(images)
        return self.image_normalization(self.image_encoder(images, training=training))

    def encode_text(self, token_ids, training=False):
        """`(B, T)` token ids → `(B, D)` unit-norm embeddings."""
        return self.text_normalization(self.text_encoder(token_ids, training=training))

    def similarity(self, images, token_ids):
        """`(B_images, B_texts)` logits, as the objective defines them.

        For CLIP's: `exp(logit_scale) · img @ txtᵀ`.
        """
        return self.objective.logits(
            self.objective_weights, self.encode_image(images), self.encode_text(token_ids)
        )

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
        # A saved config holds `jit_compile` as the saving backend resolved
        # "auto" (False on TensorFlow without an accelerator and on PyTorch):
        # kept, a model trained on a CPU would train op by op on JAX, and one
        # saved on JAX would go through torch.compile on PyTorch. XLA or not
        # is this backend's choice, so it is resolved again here.
        config["jit_compile"] = "auto"
        self.compile(**config)
        self.optimizer.build(self.trainable_variables)

    def make_train_function(self, force=False):
        # Outside a tf.distribute scope Keras builds the optimizer inside the
        # first traced step, and a tf.function that creates variables is
        # traced twice: built here, the step is traced once (5 s less for a
        # tiny model on TensorFlow).
        if self.optimizer is not None and not self.optimizer.built:
            self.optimizer.build(self.trainable_variables)
        # A traced step keeps the patch-dropout rate it was traced with.
        rate = getattr(self.image_encoder, "patch_dropout", 0.0)
        force = force or rate != getattr(self, "_traced_patch_dropout", rate)
        self._traced_patch_dropout = rate
        return super().make_train_function(force)

    # Keras' own steps (`(data)`, or `(state, data)` on JAX), except with
    # accumulation steps (this backend's cached-gradient step) and on
    # PyTorch under torch.distributed, where the gradients must be summed
    # over the processes and the logged loss is the global batch's.
    def train_step(self, *arguments):
        if self.accumulation_steps > 1:
            return cached_gradients.step_module().train_step(self, *arguments)
        steps = _torch_data_parallel()
        return steps.train_step(self, *arguments) if steps else super().train_step(*arguments)

    def test_step(self, *arguments):
        if self.accumulation_steps > 1:  # a batch too big to embed at once
            return cached_gradients.step_module().test_step(self, *arguments)
        steps = _torch_data_parallel()
        return steps.test_step(self, *arguments) if steps else super().test_step(*arguments)

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        loss, metrics, num_replicas = self.objective.loss(
            self.objective_weights, y_pred["image_embeddings"], y_pred["text_embeddings"]
        )
        for name, values in metrics.items():
            getattr(self, name).update_state(values)
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
        kind, found = clip_presets.resolve(preset)
        if kind == "architecture":
            image_encoder, text_encoder = clip_presets.build_towers_from(found, dtype)
            return cls(image_encoder, text_encoder, name=clip_presets.model_name(preset),
                       **clip_presets.model_arguments(found, image_encoder, text_encoder))
        from keras_clip.models.loading import read_model

        return read_model(found, compile=False)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "image_encoder": keras.saving.serialize_keras_object(self.image_encoder),
            "text_encoder": keras.saving.serialize_keras_object(self.text_encoder),
            "objective": keras.saving.serialize_keras_object(self.objective),
            "preprocessing": self.preprocessing.to_dict(),
            "accumulation_steps": self.accumulation_steps,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("image_encoder", "text_encoder"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


def _with_0_1_arguments(objective, kwargs):
    """keras_clip 0.1's temperature arguments (and saved configs) as CLIP's objective.

    Pops them from `kwargs`; returns `objective` when there are none.
    """
    legacy = {key: kwargs.pop(key) for key in ("logit_scale_init", "max_logit_scale")
              if key in kwargs}
    if not legacy:
        return objective
    if objective != "contrastive":
        raise ValueError(
            f"{', '.join(legacy)} set CLIP's contrastive objective; pass them to the "
            f"objective instead of objective={objective!r}."
        )
    return ContrastiveObjective(**legacy)


def _torch_data_parallel():
    """`models/torch_data_parallel` in a torch.distributed run of several processes."""
    if keras.backend.backend() != "torch":
        return None
    from keras_clip.losses.torch_replica import world_size

    if world_size() == 1:
        return None
    from keras_clip.models import torch_data_parallel

    return torch_data_parallel
