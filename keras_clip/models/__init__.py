"""CLIP's towers and the joint model, written with `keras.ops` only."""

from keras_clip.models.bag_of_words_encoder import BagOfWordsEncoder
from keras_clip.models.clip_model import CLIPModel
from keras_clip.models.convnext_encoder import ConvNeXtEncoder
from keras_clip.models.modified_resnet import ModifiedResNet
from keras_clip.models.siglip_text_transformer import SigLIPTextTransformer
from keras_clip.models.siglip_vision_transformer import SigLIPVisionTransformer
from keras_clip.models.text_transformer import TextTransformer
from keras_clip.models.vision_transformer import VisionTransformer

__all__ = [
    "BagOfWordsEncoder",
    "CLIPModel",
    "ConvNeXtEncoder",
    "ModifiedResNet",
    "SigLIPTextTransformer",
    "SigLIPVisionTransformer",
    "TextTransformer",
    "VisionTransformer",
]
