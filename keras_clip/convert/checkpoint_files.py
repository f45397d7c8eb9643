"""Reading other implementations' checkpoints as `{name: numpy array}`.

Safetensors files are parsed here, with numpy alone (no torch). PyTorch
files (`.pt`, `.bin`, `.pth`) go through `torch.load(weights_only=True)`,
which only rebuilds tensors and plain containers: a pickle that would run
code is refused, never executed. OpenAI's own release files are TorchScript
archives; those load through `torch.jit.load`, which runs no Python pickle.
"""

import json
import struct
import zipfile

import numpy as np

from keras_clip import files

SAFETENSORS_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}
# Training checkpoints wrap the weights: {"state_dict": {...}, "epoch": ...}.
WRAPPER_KEYS = ("state_dict", "model", "module")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read as weights."""


def read_checkpoint(path):
    """`{name: float32 numpy array}` from a `.safetensors` or PyTorch file.

    Names lose the `module.` prefix that DistributedDataParallel adds.
    """
    if not files.isfile(path):
        raise CheckpointError(f"No checkpoint file at {path}.")
    if path.endswith(".safetensors"):
        weights = read_safetensors(path)
    else:
        with files.local_copy(path) as local:  # torch reads local files
            try:
                weights = read_torch_file(local)
            except CheckpointError as error:
                raise CheckpointError(str(error).replace(local, path)) from None
    return {name.removeprefix("module."): value for name, value in weights.items()}


def read_safetensors(path):
    """Parses the safetensors layout: u64 header size, JSON header, raw bytes."""
    size = files.getsize(path)
    with files.open(path, "rb") as file:
        head = file.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path}: too short to be a safetensors file.")
        (header_size,) = struct.unpack("<Q", head)
        if header_size > size - 8:
            raise CheckpointError(
                f"{path}: header of {header_size} bytes in a {size}-byte file; "
                f"truncated or not safetensors."
            )
        try:
            header = json.loads(file.read(header_size))
        except ValueError as error:
            raise CheckpointError(f"{path}: unreadable safetensors header ({error}).") from None
        if not isinstance(header, dict):
            raise CheckpointError(f"{path}: its safetensors header is a JSON "
                                  f"{type(header).__name__}, not an object of weights.")
        data = file.read()
    header.pop("__metadata__", None)
    weights = {}
    for name, entry in header.items():
        start, end, shape = _safetensors_entry(entry, name, path)
        if end > len(data):
            raise CheckpointError(
                f"{path}: weight {name!r} ends at byte {end} of a {len(data)}-byte "
                f"data section; the file is truncated."
            )
        dtype = _safetensors_dtype(entry["dtype"], name, path)
        size = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        if end - start != size:
            raise CheckpointError(
                f"{path}: weight {name!r} of shape {shape} needs {size} bytes, but its "
                f"offsets span {end - start}.")
        # A view of the file's bytes, not a copy: full-size models are GBs.
        array = np.frombuffer(memoryview(data)[start:end], dtype=dtype)
        array = array.reshape(shape)
        if entry["dtype"] in ("BF16", "F16", "F64"):
            array = array.astype(np.float32)
        weights[name] = array
    return weights


def _safetensors_entry(entry, name, path):
    """`(start, end, shape)` of a header entry, or a `CheckpointError`."""
    try:
        start, end = (int(offset) for offset in entry["data_offsets"])
        shape = [int(side) for side in entry["shape"]]
        if not isinstance(entry["dtype"], str):
            raise TypeError
    except (TypeError, KeyError, ValueError):
        raise CheckpointError(
            f"{path}: weight {name!r} has no valid dtype, shape and data_offsets in the "
            f"safetensors header.") from None
    if not 0 <= start <= end or min(shape, default=0) < 0:
        raise CheckpointError(f"{path}: weight {name!r} has offsets {start}..{end} and "
                              f"shape {shape}, which no tensor has.")
    return start, end, shape


def _safetensors_dtype(code, name, path):
    if code == "BF16":
        import ml_dtypes  # ships with TensorFlow and JAX

        return ml_dtypes.bfloat16
    if code not in SAFETENSORS_DTYPES:
        raise CheckpointError(f"{path}: weight {name!r} has unsupported dtype {code}.")
    return SAFETENSORS_DTYPES[code]


def read_torch_file(path):
    try:
        import torch
    except ImportError:
        raise CheckpointError(
            f"Reading {path} needs PyTorch (the CPU build is enough): "
            f"pip install 'keras-clip[convert]'. Safetensors files need no torch."
        ) from None
    if _is_torchscript(path):
        try:
            module = torch.jit.load(path, map_location="cpu")
        except Exception as error:  # torch raises RuntimeError with C++ context
            raise CheckpointError(
                f"{path} looks like a TorchScript archive but does not load "
                f"({_first_line(error)})."
            ) from None
        return _to_numpy(module.state_dict())
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError or RuntimeError
        raise CheckpointError(
            f"Refused to load {path}: it is not a plain tensor checkpoint "
            f"(torch.load with weights_only=True said: {_first_line(error)}). "
            f"Pickles that construct other objects can run code, so they are "
            f"never unpickled; re-save the state dict with torch.save(model."
            f"state_dict(), path) or as .safetensors."
        ) from None
    for key in WRAPPER_KEYS:
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
    if not isinstance(loaded, dict):
        raise CheckpointError(f"{path} holds a {type(loaded).__name__}, not a state dict.")
    return _to_numpy(loaded)


def _first_line(error):
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _is_torchscript(path):
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as error:
        raise CheckpointError(f"{path} is a damaged zip archive ({error}).") from None
    return any(name.split("/", 1)[-1].startswith("code/") for name in names)


def _to_numpy(state_dict):
    import torch

    weights = {}
    for name, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            continue  # e.g. OpenAI's integer fields beside the tensors
        if value.is_floating_point():
            value = value.float()
        weights[name] = value.detach().cpu().numpy()
    return weights

