"""Hostile class folders through `keras-clip evaluate --folder`.

Images that cannot be decoded are counted in the report, files that are no
images TensorFlow decodes are listed by extension, and a folder with nothing
to evaluate is one line.
"""

import json

import pytest

from tests.hostile.corpus import assert_user_error, encode, noise, run_cli

# What a hostile folder does is decided by the TensorFlow data pipeline,
# the same under every backend.
pytestmark = pytest.mark.backend_independent


@pytest.fixture(scope="module")
def model_and_tokenizer(tmp_path_factory):
    from keras_clip import CLIPModel
    from keras_clip.data.clip_tokenizer import CLIPTokenizer

    root = tmp_path_factory.mktemp("model")
    model = CLIPModel.from_preset("tiny-vit")
    model.save(str(root / "m.keras"))
    tokenizer = CLIPTokenizer.from_openai(context_length=16)  # tiny-vit's vocabulary
    (root / "templates.txt").write_text("a photo of a {}.\n")  # one prompt: fast
    argv = ["--model", root / "m.keras", "--templates", root / "templates.txt"]
    return model, tokenizer, argv


def evaluate_folder(folder, model_and_tokenizer):
    """The zero-shot report, in this process (the CLI path is tested below)."""
    from keras_clip.evaluation.evaluate import evaluate

    model, tokenizer, _ = model_and_tokenizer
    return evaluate(model, tokenizer, folder=str(folder), templates=["a photo of a {}."],
                    batch_size=8)["zero_shot"]


def evaluate_cli(capsys, folder, argv, tmp_path):
    report = tmp_path / "report.json"
    code, out, err = run_cli(capsys, ["evaluate", "--folder", folder, *argv, "--json", report])
    assert code == 0, err
    return json.loads(report.read_text())["zero_shot"]


def make(root, files):
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if data is None:
            path.mkdir()
        else:
            path.write_bytes(data)
    return root


JPEG, PNG = encode(noise(seed=1)), encode(noise(seed=2), "PNG")

COUNTED = [  # (id, files, images evaluated, unreadable, ignored files)
    ("webp-and-gif-and-bmp", {"cat/a.webp": encode(noise(), "WEBP"),
                              "cat/b.gif": encode(noise(), "GIF"),
                              "dog/c.bmp": encode(noise(), "BMP")}, 3, 0, {}),
    ("tiff-is-listed", {"cat/a.jpg": JPEG, "cat/b.tif": encode(noise(), "TIFF"),
                        "dog/c.tiff": encode(noise(), "TIFF")}, 1, 0,
     {".tif": 1, ".tiff": 1}),
    ("broken-images", {"cat/a.jpg": JPEG, "cat/b.jpg": b"broken", "dog/c.png": b"",
                       "dog/d.png": PNG[:100]}, 1, 3, {}),
    ("non-images", {"cat/a.jpg": JPEG, "cat/notes.txt": b"hi", "dog/README": b"x",
                    "dog/b.png": PNG}, 2, 0, {".txt": 1, "(no extension)": 1}),
    ("hidden-files", {"cat/a.jpg": JPEG, "cat/.DS_Store": b"\0", "dog/._b.png": b"junk",
                      "dog/b.png": PNG}, 2, 0, {}),
    ("nested-folder", {"cat/a.jpg": JPEG, "cat/sub/b.jpg": JPEG, "dog/b.png": PNG}, 2, 0, {}),
    ("empty-class", {"cat/a.jpg": JPEG, "dog/": None}, 1, 0, {}),
    ("upper-case-extension", {"cat/A.JPG": JPEG, "dog/B.PNG": PNG}, 2, 0, {}),
    ("wrong-extension", {"cat/a.png": JPEG, "dog/b.jpg": PNG}, 2, 0, {}),
    ("thin-images", {"cat/a.png": encode(noise(2000, 1), "PNG"),
                     "dog/b.png": encode(noise(1, 2000), "PNG")}, 2, 0, {}),
]


@pytest.mark.parametrize("name,files,images,unreadable,ignored", COUNTED,
                         ids=[c[0] for c in COUNTED])
def test_every_file_of_a_class_folder_is_evaluated_or_counted(name, files, images, unreadable,
                                                              ignored, model_and_tokenizer,
                                                              tmp_path, capsys):
    folder = make(tmp_path / "f", files)
    report = evaluate_folder(folder, model_and_tokenizer)
    assert report["images"] == images
    assert report["unreadable_images"] == unreadable
    assert report["ignored_files"] == ignored


REFUSED = [  # (id, files, phrases)
    ("no-class-folders", {"a.jpg": JPEG}, ["has no class sub-folders"]),
    ("only-empty-classes", {"cat/": None, "dog/": None}, ["holds no images"]),
    ("only-tiffs", {"cat/a.tif": encode(noise(), "TIFF")}, ["holds no images", ".tif"]),
]


@pytest.mark.parametrize("name,files,phrases", REFUSED, ids=[c[0] for c in REFUSED])
def test_a_folder_with_nothing_to_evaluate_is_one_line(name, files, phrases,
                                                       model_and_tokenizer, tmp_path, capsys):
    folder = make(tmp_path / "f", files)
    assert_user_error(capsys, ["evaluate", "--folder", folder, *model_and_tokenizer[2]],
                      *phrases)


def test_the_cli_report_counts_what_it_could_not_read(model_and_tokenizer, tmp_path, capsys):
    folder = make(tmp_path / "f", {"cat/a.jpg": JPEG, "cat/b.jpg": b"broken",
                                   "dog/c.tif": encode(noise(), "TIFF")})
    report = evaluate_cli(capsys, folder, model_and_tokenizer[2], tmp_path)
    assert (report["images"], report["unreadable_images"]) == (1, 1)
    assert report["ignored_files"] == {".tif": 1} and report["empty_classes"] == ["dog"]


def test_nothing_to_evaluate_at_all_is_one_line(model_and_tokenizer, capsys):
    assert_user_error(capsys, ["evaluate", *model_and_tokenizer[2]], "Nothing to evaluate")
