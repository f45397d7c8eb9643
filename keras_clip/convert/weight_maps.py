"""Which checkpoint tensors fill which keras_clip weights, and how.

A map is a list of entries `(variable, source_names, transform)`: the
transform turns the named source arrays into the variable's value. Two
layouts are spelled out here: OpenAI's release (which OpenCLIP keeps, with
`visual.` and text-tower names at the top level) and Hugging Face's
`CLIPModel`. Layout facts: PyTorch stores a linear layer's weight as
`(out, in)` (Keras: `(in, out)`), a convolution's as `(out, in, kh, kw)`
(Keras: `(kh, kw, in, out)`), and OpenAI's projections `proj` and
`text_projection` as `(in, out)` matrices used as `x @ proj`.
"""

import numpy as np

from keras_clip.models.modified_resnet import ModifiedResNet
from keras_clip.models.siglip_text_transformer import SigLIPTextTransformer
from keras_clip.models.siglip_vision_transformer import SigLIPVisionTransformer
from keras_clip.models.text_transformer import TextTransformer
from keras_clip.models.vision_transformer import VisionTransformer

# Source tensors that are not weights: BatchNorm's step counter, fixed
# buffers (causal mask, position ids) and OpenAI's integer fields.
IGNORED_SUFFIXES = ("num_batches_tracked", "attn_mask", "position_ids")
IGNORED_NAMES = ("input_resolution", "context_length", "vocab_size")


def is_ignored(name):
    return name in IGNORED_NAMES or name.endswith(IGNORED_SUFFIXES)


def same(x):
    return x


def transpose(x):
    return x.T


def conv_kernel(x):
    return np.transpose(x, (2, 3, 1, 0))


def stacked_transpose(*arrays):
    """Separate q/k/v weights `(out, in)` → one fused `(in, 3 * out)` kernel."""
    return np.concatenate(arrays, axis=0).T


def concatenated(*arrays):
    return np.concatenate(arrays, axis=0)


def dense(layer, name):
    yield layer.kernel, (f"{name}.weight",), transpose
    if layer.use_bias:
        yield layer.bias, (f"{name}.bias",), same


def layer_norm(layer, name):
    yield layer.gamma, (f"{name}.weight",), same
    yield layer.beta, (f"{name}.bias",), same


def batch_norm(layer, name):
    yield layer.gamma, (f"{name}.weight",), same
    yield layer.beta, (f"{name}.bias",), same
    yield layer.moving_mean, (f"{name}.running_mean",), same
    yield layer.moving_variance, (f"{name}.running_var",), same


def conv(layer, name):
    yield layer.kernel, (f"{name}.weight",), conv_kernel


# === OpenAI / OpenCLIP ===


def openai_entries(model):
    """The map of a `CLIPModel` from OpenAI's (and OpenCLIP's) names."""
    image, text = model.image_encoder, model.text_encoder
    if isinstance(image, VisionTransformer):
        yield from _openai_vision_transformer(image, "visual.")
    elif isinstance(image, ModifiedResNet):
        yield from _openai_modified_resnet(image, "visual.")
    else:
        raise ValueError(f"No OpenAI layout for image tower {type(image).__name__}.")
    if not isinstance(text, TextTransformer):
        raise ValueError(f"No OpenAI layout for text tower {type(text).__name__}.")
    embedding = text.embedding
    yield embedding.token_embedding, ("token_embedding.weight",), same
    yield embedding.position_embedding, ("positional_embedding",), same
    for i, block in enumerate(text.blocks):
        yield from _openai_block(block, f"transformer.resblocks.{i}.")
    yield from layer_norm(text.ln_final, "ln_final")
    yield text.projection.kernel, ("text_projection",), same
    yield model.logit_scale, ("logit_scale",), same


def _openai_block(block, prefix):
    yield from layer_norm(block.ln_1, prefix + "ln_1")
    yield block.attn.in_proj.kernel, (prefix + "attn.in_proj_weight",), transpose
    yield block.attn.in_proj.bias, (prefix + "attn.in_proj_bias",), same
    yield from dense(block.attn.out_proj, prefix + "attn.out_proj")
    yield from layer_norm(block.ln_2, prefix + "ln_2")
    yield from dense(block.mlp_fc, prefix + "mlp.c_fc")
    yield from dense(block.mlp_proj, prefix + "mlp.c_proj")


def _openai_vision_transformer(encoder, prefix):
    patches = encoder.patch_embedding
    yield from conv(patches.conv, prefix + "conv1")
    yield patches.class_embedding, (prefix + "class_embedding",), same
    yield patches.position_embedding, (prefix + "positional_embedding",), same
    yield from layer_norm(encoder.ln_pre, prefix + "ln_pre")
    for i, block in enumerate(encoder.blocks):
        yield from _openai_block(block, f"{prefix}transformer.resblocks.{i}.")
    yield from layer_norm(encoder.ln_post, prefix + "ln_post")
    yield encoder.projection.kernel, (prefix + "proj",), same


def _openai_modified_resnet(encoder, prefix):
    for i, (stem_conv, stem_norm) in enumerate(
        zip(encoder.stem_convs, encoder.stem_norms), start=1
    ):
        yield from conv(stem_conv, f"{prefix}conv{i}")
        yield from batch_norm(stem_norm, f"{prefix}bn{i}")
    for stage_index, stage in enumerate(encoder.stages, start=1):
        for block_index, block in enumerate(stage):
            name = f"{prefix}layer{stage_index}.{block_index}."
            for i in (1, 2, 3):
                yield from conv(getattr(block, f"conv{i}"), f"{name}conv{i}")
                yield from batch_norm(getattr(block, f"bn{i}"), f"{name}bn{i}")
            if block.downsample_conv is not None:
                # downsample is Sequential(AvgPool "-1", Conv "0", BatchNorm "1").
                yield from conv(block.downsample_conv, f"{name}downsample.0")
                yield from batch_norm(block.downsample_bn, f"{name}downsample.1")
    pool = encoder.attention_pooling
    yield pool.position_embedding, (prefix + "attnpool.positional_embedding",), same
    for projection in ("q_proj", "k_proj", "v_proj", "c_proj"):
        yield from dense(getattr(pool, projection), f"{prefix}attnpool.{projection}")


# === Hugging Face ===


def hf_entries(model):
    """The map of a `CLIPModel` from Hugging Face `CLIPModel` names (ViT)."""
    image, text = model.image_encoder, model.text_encoder
    if not isinstance(image, VisionTransformer) or not isinstance(text, TextTransformer):
        raise ValueError("Hugging Face CLIP checkpoints have ViT and Transformer towers.")
    prefix = "vision_model."
    patches = image.patch_embedding
    yield from conv(patches.conv, prefix + "embeddings.patch_embedding")
    yield patches.class_embedding, (prefix + "embeddings.class_embedding",), same
    yield (
        patches.position_embedding,
        (prefix + "embeddings.position_embedding.weight",),
        same,
    )
    yield from layer_norm(image.ln_pre, prefix + "pre_layrnorm")  # sic
    for i, block in enumerate(image.blocks):
        yield from _hf_block(block, f"{prefix}encoder.layers.{i}.")
    yield from layer_norm(image.ln_post, prefix + "post_layernorm")
    yield image.projection.kernel, ("visual_projection.weight",), transpose

    prefix = "text_model."
    embedding = text.embedding
    yield (
        embedding.token_embedding,
        (prefix + "embeddings.token_embedding.weight",),
        same,
    )
    yield (
        embedding.position_embedding,
        (prefix + "embeddings.position_embedding.weight",),
        same,
    )
    for i, block in enumerate(text.blocks):
        yield from _hf_block(block, f"{prefix}encoder.layers.{i}.")
    yield from layer_norm(text.ln_final, prefix + "final_layer_norm")
    yield text.projection.kernel, ("text_projection.weight",), transpose
    yield model.logit_scale, ("logit_scale",), same


def _hf_block(block, prefix):
    attention = prefix + "self_attn."
    yield from layer_norm(block.ln_1, prefix + "layer_norm1")
    qkv = [f"{attention}{part}_proj" for part in "qkv"]
    yield (
        block.attn.in_proj.kernel,
        tuple(f"{name}.weight" for name in qkv),
        stacked_transpose,
    )
    yield block.attn.in_proj.bias, tuple(f"{name}.bias" for name in qkv), concatenated
    yield from dense(block.attn.out_proj, attention + "out_proj")
    yield from layer_norm(block.ln_2, prefix + "layer_norm2")
    yield from dense(block.mlp_fc, prefix + "mlp.fc1")
    yield from dense(block.mlp_proj, prefix + "mlp.fc2")


# === Hugging Face SiglipModel ===


def hf_siglip_entries(model):
    """The map of a `CLIPModel` from Hugging Face `SiglipModel` names."""
    image, text = model.image_encoder, model.text_encoder
    if not (isinstance(image, SigLIPVisionTransformer)
            and isinstance(text, SigLIPTextTransformer)):
        raise ValueError("Hugging Face SigLIP checkpoints have SigLIP towers.")
    prefix = "vision_model."
    patches = image.patch_embedding.conv
    yield from conv(patches, prefix + "embeddings.patch_embedding")
    yield patches.bias, (prefix + "embeddings.patch_embedding.bias",), same
    yield (image.patch_embedding.position_embedding,
           (prefix + "embeddings.position_embedding.weight",), same)
    for i, block in enumerate(image.blocks):
        yield from _hf_block(block, f"{prefix}encoder.layers.{i}.")
    yield from layer_norm(image.ln_post, prefix + "post_layernorm")
    head, name = image.head, prefix + "head."
    yield head.probe, (name + "probe",), lambda x: x.reshape(-1)
    yield head.in_proj.kernel, (name + "attention.in_proj_weight",), transpose
    yield head.in_proj.bias, (name + "attention.in_proj_bias",), same
    yield from dense(head.out_proj, name + "attention.out_proj")
    yield from layer_norm(head.layer_norm, name + "layernorm")
    yield from dense(head.mlp_fc, name + "mlp.fc1")
    yield from dense(head.mlp_proj, name + "mlp.fc2")

    prefix = "text_model."
    yield (text.embedding.token_embedding, (prefix + "embeddings.token_embedding.weight",),
           same)
    yield (text.embedding.position_embedding,
           (prefix + "embeddings.position_embedding.weight",), same)
    for i, block in enumerate(text.blocks):
        yield from _hf_block(block, f"{prefix}encoder.layers.{i}.")
    yield from layer_norm(text.ln_final, prefix + "final_layer_norm")
    yield from dense(text.projection, prefix + "head")
    yield model.logit_scale, ("logit_scale",), lambda x: x.reshape(())
    yield model.logit_bias, ("logit_bias",), lambda x: x.reshape(())
