"""Building blocks of CLIP's towers, written with `keras.ops` only."""

from keras_clip.layers.attention_pooling import AttentionPooling
from keras_clip.layers.bottleneck import Bottleneck
from keras_clip.layers.end_of_text_pooling import EndOfTextPooling
from keras_clip.layers.logit_scale_constraint import LogitScaleConstraint
from keras_clip.layers.masked_mean_pooling import MaskedMeanPooling
from keras_clip.layers.multi_head_self_attention import MultiHeadSelfAttention
from keras_clip.layers.patch_dropout import PatchDropout
from keras_clip.layers.patch_embedding import PatchEmbedding
from keras_clip.layers.probe_attention_pooling import ProbeAttentionPooling
from keras_clip.layers.quick_gelu import gelu_tanh, quick_gelu
from keras_clip.layers.residual_attention_block import ResidualAttentionBlock
from keras_clip.layers.token_and_position_embedding import TokenAndPositionEmbedding

__all__ = [
    "AttentionPooling",
    "Bottleneck",
    "EndOfTextPooling",
    "LogitScaleConstraint",
    "MaskedMeanPooling",
    "MultiHeadSelfAttention",
    "PatchDropout",
    "PatchEmbedding",
    "ProbeAttentionPooling",
    "gelu_tanh",
    "quick_gelu",
    "ResidualAttentionBlock",
    "TokenAndPositionEmbedding",
]
