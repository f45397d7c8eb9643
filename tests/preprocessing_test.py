"""The preprocessing record: validated, saved with models, and used by every pipeline."""

import io
import json
import os

import keras
import numpy as np
import pytest
from PIL import Image

from keras_clip.models.clip_model import CLIPModel
from keras_clip.preprocessing import CLIP_MEAN, CLIP_STD, Preprocessing
from tests.helpers import to_numpy

# Constants no CLIP checkpoint uses, so that CLIP's would give other inputs.
MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


@pytest.mark.backend_independent
@pytest.mark.parametrize("changes, message", [
    ({"mean": (0.5, 0.5)}, "mean must be 3 finite numbers"),
    ({"std": (0.2, 0.0, 0.2)}, "std must be positive"),
    ({"std": (0.2, float("nan"), 0.2)}, "std must be 3 finite numbers"),
    ({"interpolation": "bilinear"}, "interpolation 'bilinear' is not implemented"),
    ({"resize": "stretch"}, "resize 'stretch' is not implemented"),
    ({"image_size": 0}, "image_size must be a positive integer"),
    ({"pad_id": 3}, "pad_id 3 is not implemented"),
])
def test_a_bad_record_is_one_clear_error(changes, message):
    with pytest.raises(ValueError, match=message):
        Preprocessing(**{"image_size": 32, "context_length": 16, **changes})


@pytest.mark.backend_independent
def test_record_round_trips_and_reads_files_written_before_it(tmp_path):
    record = Preprocessing(32, 16, mean=MEAN, std=STD)
    assert Preprocessing.from_dict(json.loads(json.dumps(record.to_dict()))) == record
    record.save(str(tmp_path))
    assert Preprocessing.load(str(tmp_path)) == record
    # `convert` in keras_clip 0.1 wrote this spelling.
    old = {"image_size": 32, "context_length": 16, "mean": list(MEAN), "std": list(STD),
           "resize": "shortest_side_bicubic_then_center_crop"}
    (tmp_path / "preprocessing.json").write_text(json.dumps(old))
    assert Preprocessing.load(str(tmp_path)) == record
    with pytest.raises(ValueError, match=r"unknown keys \['colour'\]"):
        Preprocessing.from_dict({**old, "colour": 1})
    assert Preprocessing.load(str(tmp_path / "nowhere")) is None


def test_the_model_saves_its_record_and_old_files_get_clip_constants(tmp_path):
    model = CLIPModel.from_preset("tiny-vit")
    assert model.preprocessing == Preprocessing(32, 16)  # CLIP's by default
    model.preprocessing = Preprocessing(32, 16, mean=MEAN, std=STD)
    path = str(tmp_path / "model.keras")
    model.save(path)
    assert keras.saving.load_model(path).preprocessing.mean == MEAN
    config = model.get_config()
    del config["preprocessing"]  # as saved before the record existed
    assert CLIPModel.from_config(config).preprocessing.mean == CLIP_MEAN
    with pytest.raises(ValueError, match="does not fit towers reading 32 pixels"):
        model.preprocessing = Preprocessing(64, 16)


def test_a_text_tower_padding_with_another_id_is_refused():
    from keras_clip.models.bag_of_words_encoder import BagOfWordsEncoder

    image = CLIPModel.from_preset("tiny-vit").image_encoder
    text = BagOfWordsEncoder(vocabulary_size=100, context_length=16, hidden_dim=8,
                             output_dim=64, padding_id=5)
    with pytest.raises(ValueError, match="takes id 5 for padding, but its inputs are padded "
                                         "with 0"):
        CLIPModel(image, text)


def png(pixels):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """A Hugging Face CLIP trained with MEAN/STD, converted by the CLI."""
    from keras_clip import cli
    from keras_clip.data.clip_tokenizer import CLIPTokenizer
    from tests.convert import references
    from tests.convert.convert_test import HF_TEXT, HF_VISION

    directory = tmp_path_factory.mktemp("hf_other_constants")
    references.hf_clip_model(HF_TEXT, HF_VISION, projection_dim=16).save_pretrained(directory)
    CLIPTokenizer.from_openai().save_vocabulary(str(directory))
    (directory / "preprocessor_config.json").write_text(
        json.dumps({"image_mean": MEAN, "image_std": STD}))
    out = str(tmp_path_factory.mktemp("converted") / "preset")
    assert cli.main(["convert", "--from", "hf", str(directory), "--out", out]) == 0
    return out


def reference_embeddings(model, pixels, mean, std):
    """The model on `(x / 255 - mean) / std` computed in NumPy (images at its size)."""
    inputs = (pixels / 255.0 - np.array(mean)) / np.array(std)
    return to_numpy(model.encode_image(inputs.astype("float32")))


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="export and evaluate run their own TensorFlow work; once is enough")
def test_converted_constants_reach_export_and_evaluate(converted, tmp_path):
    import tensorflow as tf

    from keras_clip import cli, load_model

    model = load_model(converted)
    assert model.preprocessing.mean == MEAN and model.preprocessing.std == STD
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)  # at the model's size
    expected = reference_embeddings(model, pixels, MEAN, STD)
    with_clip_constants = reference_embeddings(model, pixels, CLIP_MEAN, CLIP_STD)
    assert np.abs(expected - with_clip_constants).max() > 1e-2  # the constants matter

    served = str(tmp_path / "served")
    assert cli.main(["export", "--model", converted, "--output", served]) == 0
    signature = tf.saved_model.load(os.path.join(served, "1")).signatures["embed_images"]
    embeddings = signature(image_bytes=tf.constant([png(p) for p in pixels]))["embeddings"]
    np.testing.assert_allclose(embeddings.numpy(), expected, atol=1e-5)

    folder = tmp_path / "classes"
    for index, image in enumerate(pixels):
        (folder / f"class {index % 2}").mkdir(parents=True, exist_ok=True)
        (folder / f"class {index % 2}" / f"{index}.png").write_bytes(png(image))
    report_path = str(tmp_path / "report.json")
    assert cli.main(["evaluate", "--model", converted, "--folder", str(folder),
                     "--json", report_path]) == 0
    report = json.loads(open(report_path).read())["zero_shot"]
    from keras_clip.data.tokenizer_spec import load_tokenizer
    from keras_clip.evaluation import zero_shot
    from keras_clip.evaluation.image_folder import image_folder_dataset

    dataset, listing, _ = image_folder_dataset(str(folder), 32, **model.preprocessing.normalization)
    delivered = np.concatenate([batch["images"].numpy() for batch in dataset])
    order = [int(os.path.basename(path)[:-4]) for path in listing.paths]
    np.testing.assert_allclose(
        delivered, (pixels[order] / 255.0 - np.array(MEAN)) / np.array(STD), atol=1e-5)
    classifier = zero_shot.zero_shot_classifier(
        model, load_tokenizer(converted), listing.class_names, zero_shot.TEMPLATES)
    predictions = zero_shot.classify(expected[order], classifier)
    metrics = zero_shot.classification_metrics(predictions, listing.labels, 2)
    assert report["top1"] == metrics["top1"]
    assert report["confusion_matrix"] == metrics["confusion_matrix"].tolist()
