import json

import numpy as np
import pytest

from keras_clip import cli
from keras_clip.evaluation.image_folder import read_image_folder
from tests.data.fixtures import encode, photo


def make_folder(root):
    for name, images in (("chat_noir", 3), ("café_au_lait", 2), ("empty_class", 0)):
        (root / name).mkdir(parents=True)
        for i in range(images):
            (root / name / f"{i}.jpg").write_bytes(encode(photo(i)))
    (root / "chat_noir" / "broken.jpg").write_bytes(b"not an image at all")
    return root


def test_read_image_folder_names_classes_and_reports_empty_ones(tmp_path):
    paths, labels, names, empty, ignored = read_image_folder(str(make_folder(tmp_path / "f")))
    assert ignored == {}
    assert names == ["café au lait", "chat noir", "empty class"]
    assert empty == ["empty class"]
    assert sorted(labels) == [0, 0, 1, 1, 1, 1] and len(paths) == 6


@pytest.mark.backend_independent
def test_cli_evaluate_skips_unreadable_images_and_writes_json(tmp_path, capsys):
    from keras_clip import CLIPModel
    from keras_clip.data.clip_tokenizer import CLIPTokenizer

    folder = make_folder(tmp_path / "f")
    model = CLIPModel.from_preset("tiny-vit")
    model.save(str(tmp_path / "m.keras"))
    CLIPTokenizer.from_openai(context_length=16).save_vocabulary(str(tmp_path / "tok"))
    arguments = ["evaluate", "--model", str(tmp_path / "m.keras"), "--folder", str(folder),
                 "--tokenizer", str(tmp_path / "tok"),
                 "--json", str(tmp_path / "report.json")]
    assert cli.main(arguments) == 0
    report = json.loads((tmp_path / "report.json").read_text())["zero_shot"]
    assert report["images"] == 5 and report["unreadable_images"] == 1
    assert report["empty_classes"] == ["empty class"]
    assert report["chance"] == np.float64(1 / 3)
    assert "top1" in capsys.readouterr().out
    missing = arguments[:4] + [str(tmp_path / "nowhere")] + arguments[5:]
    assert cli.main(missing) == 2
    assert "No image folder" in capsys.readouterr().err
