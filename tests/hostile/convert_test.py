"""Hostile checkpoint files through `keras-clip convert`.

Each is refused with one line naming the file and what is wrong; nothing is
written at `--out`, and no file is ever unpickled into code.
"""

import json
import struct
import zipfile

import numpy as np
import pytest

from tests.hostile.corpus import assert_user_error


def safetensors(header, data=b"", header_size=None):
    text = json.dumps(header).encode() if not isinstance(header, bytes) else header
    size = len(text) if header_size is None else header_size
    return struct.pack("<Q", size) + text + data


F32 = {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}

SAFETENSORS = [  # (id, file bytes, phrases)
    ("header-is-a-list", safetensors([1, 2, 3]), ["header is a JSON list"]),
    ("header-is-a-number", safetensors(7), ["header is a JSON int"]),
    ("header-not-json", safetensors(b"{not json"), ["unreadable safetensors header"]),
    ("header-size-huge", safetensors({}, header_size=2**60), ["truncated or not safetensors"]),
    ("shorter-than-8-bytes", b"\x01\x02", ["too short to be a safetensors file"]),
    ("empty", b"", ["too short"]),
    ("entry-not-an-object", safetensors({"w": 5}), ["'w' has no valid dtype"]),
    ("entry-without-offsets", safetensors({"w": {"dtype": "F32", "shape": [1]}}),
     ["'w' has no valid dtype, shape and data_offsets"]),
    ("offsets-reversed", safetensors({"w": {**F32, "data_offsets": [16, 0]}}, b"\0" * 16),
     ["offsets 16..0"]),
    ("negative-shape", safetensors({"w": {**F32, "shape": [-2, -2]}}, b"\0" * 16),
     ["no tensor has"]),
    ("shape-does-not-fit-bytes", safetensors({"w": {**F32, "shape": [3, 3]}}, b"\0" * 16),
     ["needs 36 bytes", "span 16"]),
    ("data-truncated", safetensors({"w": F32}, b"\0" * 8), ["the file is truncated"]),
    ("unknown-dtype", safetensors({"w": {**F32, "dtype": "F8_E9"}}, b"\0" * 16),
     ["unsupported dtype F8_E9"]),
    ("dtype-not-text", safetensors({"w": {**F32, "dtype": 3}}, b"\0" * 16), ["no valid dtype"]),
    ("valid-but-wrong-weights", safetensors({"w": F32}, b"\0" * 16),
     ["does not match", "unexpected weight 'w'"]),
]


@pytest.mark.parametrize("name,data,phrases", SAFETENSORS, ids=[c[0] for c in SAFETENSORS])
def test_a_malformed_safetensors_file_is_refused(name, data, phrases, tmp_path, capsys):
    path = tmp_path / "model.safetensors"
    path.write_bytes(data)
    out = tmp_path / "converted"
    assert_user_error(capsys, ["convert", path, "--from", "open_clip", "--preset", "tiny-vit",
                               "--activation", "gelu", "--out", out], *phrases)
    assert not out.exists() and not list(tmp_path.glob(".converting-*"))


def fake_torchscript(path):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model/code/__torch__.py", "def forward(self): pass")
        archive.writestr("model/data.pkl", b"\x80\x04garbage")


def random_zip(path):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("hello.txt", "not a checkpoint")


def damaged_zip(path):
    random_zip(path)
    data = bytearray(path.read_bytes())
    data[-10:] = b"\xff" * 10  # the central directory's end
    path.write_bytes(bytes(data))


TORCH = [  # (id, writer(path), phrases)
    ("fake-torchscript", fake_torchscript, ["looks like a TorchScript archive but does not load"]),
    ("zip-without-weights", random_zip, ["Refused to load"]),
    ("random-bytes", lambda p: p.write_bytes(np.random.default_rng(0).bytes(3000)),
     ["Refused to load"]),
    ("empty-file", lambda p: p.write_bytes(b""), ["Refused to load"]),
    ("a-text-file", lambda p: p.write_text("state_dict = {}"), ["Refused to load"]),
    ("damaged-zip", damaged_zip, ["is a damaged zip archive"]),
    ("a-list-not-a-dict", lambda p: __import__("torch").save([1, 2], str(p)),
     ["holds a list, not a state dict"]),
]


@pytest.mark.parametrize("name,write,phrases", TORCH, ids=[c[0] for c in TORCH])
def test_a_malformed_pytorch_file_is_refused(name, write, phrases, tmp_path, capsys):
    path = tmp_path / "model.pt"
    write(path)
    out = tmp_path / "converted.keras"
    assert_user_error(capsys, ["convert", path, "--from", "openai", "--preset", "tiny-vit",
                               "--out", out], str(path), *phrases)
    assert not out.exists()


HF = [  # (id, directory maker, phrases)
    ("not-a-directory", lambda d: d.rmdir() or d.write_text("x"),
     ["is not a Hugging Face model directory"]),
    ("no-config", lambda d: None, ["Missing", "config.json"]),
    ("config-not-json", lambda d: (d / "config.json").write_text("{oops"),
     ["config.json is not valid JSON"]),
    ("config-a-list", lambda d: (d / "config.json").write_text("[]"),
     ["config.json holds a JSON list"]),
    ("config-wrong-types", lambda d: _hf(d, {"text_config": 5}), ["not a CLIP config"]),
    ("vocab-not-json", lambda d: _hf(d, {}, vocab="nope"), ["vocab.json is not valid JSON"]),
    ("no-weights", lambda d: _hf(d, {}), ["has none of model.safetensors"]),
]


def _hf(directory, config, vocab="{}"):
    (directory / "config.json").write_text(json.dumps(config))
    (directory / "vocab.json").write_text(vocab)


@pytest.mark.parametrize("name,make,phrases", HF, ids=[c[0] for c in HF])
def test_a_broken_hugging_face_directory_is_refused(name, make, phrases, tmp_path, capsys):
    directory = tmp_path / "hf"
    directory.mkdir()
    make(directory)
    assert_user_error(capsys, ["convert", directory, "--from", "hf", "--out",
                               tmp_path / "out"], *phrases)
    assert not (tmp_path / "out").exists()


def test_an_existing_destination_is_never_overwritten(tmp_path, capsys):
    from keras_clip.convert import save_converted

    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not overwriting"):
        save_converted(None, None, {}, str(tmp_path / "taken"))
    assert (tmp_path / "taken" / "mine.txt").read_text() == "keep me"


def test_a_conversion_failing_while_writing_leaves_nothing(tmp_path):
    from keras_clip import CLIPModel
    from keras_clip.convert import save_converted

    class BrokenTokenizer:
        def save_vocabulary(self, directory):
            (tmp_path / "half").write_text("written before the failure")
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_converted(CLIPModel.from_preset("tiny-vit"), BrokenTokenizer(), {},
                       str(tmp_path / "out"))
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".converting-*"))
