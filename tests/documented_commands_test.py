"""Every `keras-clip` command the README and the `--help` texts show runs.

The commands are read from the README's bash blocks and from each
sub-command's help epilog, shrunk to tiny sizes (2 steps, the tiny-vit
preset, small demo data), and run in that order in a folder holding the
files they name (`captions.csv`, `photos/`, `shards/*.tar`, checkpoints to
convert, ...): later commands use what earlier ones wrote, as a reader
following the README would. Two chains share no file (the demo and the
conversions; the data → train → evaluate → export path), so they run as
two tests. Blocks fenced as `sh` hold commands for clusters and buckets
(README "Scaling out"); what they run is tested by
tests/training/distribution_test.py (several processes) and
tests/cloud_storage_test.py (URLs). In-process on the TensorFlow backend only: the
other backends' command paths have their own tests, and one pass keeps CI
short.
"""

import argparse
import json
import os
import pathlib
import re
import shlex
import tarfile

import keras
import numpy as np
import pytest
from PIL import Image

from keras_clip import cli

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
COLOURS = {"red": (220, 40, 40), "blue": (40, 60, 220), "green": (40, 170, 60)}
# Tiny stand-ins for the documented sizes: (pattern, replacement) on each word.
SHRINK = [
    (r"^steps=\d+$", "steps=2"),
    (r"^batch_size=\d+$", "batch_size=8"),
    (r"^preset=ViT-B/32$", "preset=tiny-vit"),
    (r"^ViT-B/32$", "tiny-vit"),
    (r"^image_size=\d+$", "image_size=64"),
    (r"^/tmp/", "tmp/"),  # inside the test's folder
]
TINY_DEMO = ["--train-pairs", "48", "--steps", "2", "--batch-size", "16", "--no-plots",
             "--export-dir", ""]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                       reason="one backend runs the documented commands"),
]


def commands_in(text):
    """The argument lists of the `keras-clip` commands in shell text."""
    for line in text.replace("\\\n", " ").splitlines():
        for part in line.split("&&"):
            if not re.match(r"\s*([A-Z_]+=\S*\s+)*keras-clip\s", part):
                continue  # prose, or another program
            words = shlex.split(part, comments=True)
            while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
                words.pop(0)  # an environment prefix: this process has its backend
            if words[:1] == ["keras-clip"]:
                yield words[1:]


def documented_commands():
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    commands = [c for block in blocks for c in commands_in(block)]
    subparsers = next(action for action in cli.build_parser()._actions
                      if isinstance(action, argparse._SubParsersAction))
    for parser in subparsers.choices.values():
        commands += commands_in(parser.epilog or "")
    return commands


def shrink(argv):
    words = []
    for word in argv:
        for pattern, replacement in SHRINK:
            word = re.sub(pattern, replacement, word)
        words.append(word)
    return words + TINY_DEMO if words[0] == "demo" else words


def write_image(path, colour):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 40), COLOURS[colour]).save(path)


def write_open_clip_checkpoints(root):
    """An OpenAI-layout state dict (tiny-vit), OpenCLIP files, Hugging Face CLIP and SigLIP
    folders."""
    import torch
    from safetensors.torch import save_file

    from keras_clip.data.clip_tokenizer import CLIPTokenizer
    from tests.convert import references
    from tests.convert.convert_test import (
        HF_TEXT,
        HF_VISION,
        OPEN_CLIP_CONFIGS,
        TINY_VIT_OPENAI,
    )

    torch.save(references.open_clip_model(TINY_VIT_OPENAI).state_dict(), root / "ViT-B-32.pt")
    config = OPEN_CLIP_CONFIGS["vit_gelu"]
    state = {k: v.contiguous() for k, v in references.open_clip_model(config).state_dict().items()}
    for name in ("open_clip_model.safetensors", "laion.safetensors"):
        save_file(state, str(root / name))
    (root / "open_clip" / "model_configs").mkdir(parents=True)
    (root / "open_clip" / "model_configs" / "ViT-B-32.json").write_text(json.dumps(config))
    hf = root / "clip-vit-base-patch32"
    references.hf_clip_model(HF_TEXT, HF_VISION, projection_dim=16).save_pretrained(str(hf))
    CLIPTokenizer.from_openai().save_vocabulary(str(hf))
    from tests.convert.siglip_convert_test import write_siglip_directory

    write_siglip_directory(root, "siglip-base-patch16-224")


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """The files the documented commands name, in a fresh current folder."""
    rows = ["filepath,caption"]
    for i in range(24):
        colour = list(COLOURS)[i % 3]
        write_image(tmp_path / "images" / f"{i}.png", colour)
        write_image(tmp_path / "photos" / colour / f"{i}.png", colour)
        rows.append(f"images/{i}.png,a {colour} square")
    (tmp_path / "captions.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "classes.txt").write_text("\n".join(COLOURS) + "\n")
    (tmp_path / "shards").mkdir()
    with tarfile.open(tmp_path / "shards" / "00000.tar", "w") as archive:
        for i in range(8):
            archive.add(tmp_path / "images" / f"{i}.png", f"{i:04d}.png")
            caption = tmp_path / f"{i}.txt"
            caption.write_text(f"a {list(COLOURS)[i % 3]} square")
            archive.add(caption, f"{i:04d}.txt")
    from keras_clip.data import caption_sources
    from keras_clip.data.tfrecord_writer import write_tfrecords

    pairs = caption_sources.read_caption_table(str(tmp_path / "captions.csv"))
    write_tfrecords(pairs, str(tmp_path / "val"), verbose=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_documented_commands_find_what_they_need():
    commands = [argv[0] for argv in documented_commands()]
    assert set(commands) >= {"demo", "make-tfrecords", "train-tokenizer", "train",
                             "evaluate", "export", "convert"}
    assert len(commands) >= 25


def in_demo_or_convert_group(argv):
    """The demo, what uses the demo's output, and conversions: needing no other step."""
    return argv[0] in ("demo", "convert") or any("keras_clip_demo" in word for word in argv)


# Two chains that share no file, run as two tests (pytest-xdist runs them at once).
GROUPS = {"demo-and-convert": in_demo_or_convert_group,
          "data-train-evaluate-export": lambda argv: not in_demo_or_convert_group(argv)}


@pytest.mark.parametrize("group", GROUPS)
def test_every_documented_command_runs(group, workspace, capsys):
    if group == "demo-and-convert":
        write_open_clip_checkpoints(workspace)
    failures, done = [], set()
    for argv in filter(GROUPS[group], map(shrink, documented_commands())):
        if tuple(argv) in done:
            continue  # the same command, shown in two places
        done.add(tuple(argv))
        status = cli.main(argv)
        output = capsys.readouterr()
        if status != 0:
            failures.append(f"keras-clip {shlex.join(argv)} → {status}: {output.err[-300:]}")
    assert not failures, "\n".join(failures)
    if group == "demo-and-convert":
        assert os.path.isfile(workspace / "keras_clip_demo" / "report.json")
        assert os.path.isfile(workspace / "b32-hf" / "model.keras")
        assert os.path.isfile(workspace / "siglip-b16" / "spiece.model")
        return
    report = json.loads((workspace / "report.json").read_text())
    assert report["zero_shot"]["images"] == 24
    assert np.isfinite(report["zero_shot"]["top1"])
    assert os.path.isdir(workspace / "saved_models" / "clip" / "1")
