"""Reference CLIP models from their own libraries, with random weights.

OpenCLIP's package `__init__` imports torchvision (for its image
transforms), and PyPI's torchvision does not import beside the CPU build of
torch this project pins. The model code itself (`model.py`,
`transformer.py`, `modified_resnet.py`) needs torchvision only for
`FrozenBatchNorm2d`, used when freezing a tower. So the reference loads
OpenCLIP's model modules under a package of its own that skips `__init__`,
with a stand-in `torchvision.ops.misc` when torchvision is absent; every
computation compared against is OpenCLIP's unmodified code.
"""

import importlib
import importlib.util
import sys
import types

import numpy as np

REFERENCE_PACKAGE = "open_clip_reference"


def _stand_in_torchvision():
    """Modules to put in `sys.modules` while OpenCLIP's model code imports."""
    try:
        import torchvision.ops.misc  # noqa: F401

        return {}
    except Exception:
        import torch

        misc = types.ModuleType("torchvision.ops.misc")

        class FrozenBatchNorm2d(torch.nn.Module):
            def __init__(self, *args, **kwargs):
                raise NotImplementedError("not used by the parity tests")

        misc.FrozenBatchNorm2d = FrozenBatchNorm2d
        ops = types.ModuleType("torchvision.ops")
        ops.misc = misc
        package = types.ModuleType("torchvision")
        package.ops = ops
        return {"torchvision": package, "torchvision.ops": ops, "torchvision.ops.misc": misc}


def open_clip_model_module():
    """OpenCLIP's `open_clip.model` module (its `CLIP` class and configs)."""
    if REFERENCE_PACKAGE not in sys.modules:
        spec = importlib.util.find_spec("open_clip")
        assert spec is not None, "pip install --no-deps open_clip_torch (see .ci/run)"
        try:  # OpenCLIP's optional text towers probe for it; import it first
            import transformers  # noqa: F401
        except ImportError:
            pass
        package = types.ModuleType(REFERENCE_PACKAGE)
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules[REFERENCE_PACKAGE] = package
        stand_ins = _stand_in_torchvision()
        sys.modules.update(stand_ins)
        try:
            importlib.import_module(f"{REFERENCE_PACKAGE}.model")
        finally:  # nothing else may see the stand-in
            for name in stand_ins:
                del sys.modules[name]
    return importlib.import_module(f"{REFERENCE_PACKAGE}.model")


def open_clip_loss_module():
    """OpenCLIP's `open_clip.loss` module (`ClipLoss`, `SigLipLoss`), unmodified."""
    open_clip_model_module()
    return importlib.import_module(f"{REFERENCE_PACKAGE}.loss")


def open_clip_model(config, seed=0):
    """An OpenCLIP `CLIP` built from a model-config dict, in eval mode."""
    import torch

    module = open_clip_model_module()
    torch.manual_seed(seed)
    model = module.CLIP(
        embed_dim=config["embed_dim"],
        vision_cfg=module.CLIPVisionCfg(**config["vision_cfg"]),
        text_cfg=module.CLIPTextCfg(**config["text_cfg"]),
        quick_gelu=config.get("quick_gelu", False),
    )
    _randomize_batch_norm_statistics(model, seed)
    return model.eval()


def hf_clip_model(text_config, vision_config, projection_dim, seed=0):
    """A Hugging Face transformers `CLIPModel`, in eval mode."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config=text_config, vision_config=vision_config, projection_dim=projection_dim
    )
    return CLIPModel(config).eval()


def _randomize_batch_norm_statistics(model, seed):
    # Fresh BatchNorms hold mean 0 / variance 1, which would hide a swap of
    # the two statistics (or of gamma and beta) in the conversion.
    import torch

    generator = torch.Generator().manual_seed(seed + 1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            size = module.num_features
            module.running_mean.copy_(torch.randn(size, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(size, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(size, generator=generator) * 0.1)


def torch_outputs(model, images_nhwc, token_ids):
    """`(image_embeddings, text_embeddings, logits_per_image)` as numpy."""
    import torch

    with torch.no_grad():
        pixels = torch.from_numpy(np.ascontiguousarray(images_nhwc.transpose(0, 3, 1, 2)))
        ids = torch.from_numpy(token_ids.astype(np.int64))
        if hasattr(model, "get_image_features"):  # Hugging Face
            image = _features(model.get_image_features(pixel_values=pixels))
            text = _features(model.get_text_features(input_ids=ids))
        else:
            image, text = model.encode_image(pixels), model.encode_text(ids)
        image = torch.nn.functional.normalize(image, dim=-1)
        text = torch.nn.functional.normalize(text, dim=-1)
        logits = model.logit_scale.exp() * image @ text.T
    return image.numpy(), text.numpy(), logits.numpy()


def _features(output):
    # transformers 5 returns a model output whose pooler_output is the projection.
    return output if hasattr(output, "shape") else output.pooler_output
