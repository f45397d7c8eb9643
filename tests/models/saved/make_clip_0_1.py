"""Writes a model as keras_clip 0.1 (commit 886853c) saved it: compiled, one step trained.

Run with that commit first on the path (see README.md here); not a test.
"""

import sys

import keras
import numpy as np

from keras_clip.data.synthetic_pairs import synthetic_pairs
from keras_clip.models.clip_model import CLIPModel
from keras_clip.models.text_transformer import TextTransformer
from keras_clip.models.vision_transformer import VisionTransformer
from keras_clip.training.clip_adamw import CLIPAdamW

keras.utils.set_random_seed(0)
image = VisionTransformer(image_size=16, patch_size=8, hidden_dim=32, num_layers=1,
                          num_heads=2, output_dim=16)
text = TextTransformer(vocabulary_size=100, context_length=8, hidden_dim=32, num_layers=1,
                       num_heads=2, output_dim=16, end_of_text_id=99)
model = CLIPModel(image, text, logit_scale_init=2.0, max_logit_scale=4.0, name="clip_0_1")
model.compile(optimizer=CLIPAdamW(1e-3, tower_learning_rate_scale=0.5))
pairs = synthetic_pairs(4, image_size=16, context_length=8, vocabulary_size=100)
model.fit(pairs, batch_size=4, epochs=1, verbose=0)
model.save(sys.argv[1])
outputs = model.predict({key: pairs[key] for key in ("images", "token_ids")}, verbose=0)
np.savez(sys.argv[1].replace(".keras", "_outputs.npz"), images=pairs["images"],
         token_ids=pairs["token_ids"], **outputs,
         logit_scale=keras.ops.convert_to_numpy(model.logit_scale))
