import base64
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_clip import CLIPModel
from keras_clip.convert import convert_checkpoint
from keras_clip.data import image_ops
from keras_clip.export import export_saved_model, op_audit
from keras_clip.export.saved_model import next_version_dir
from tests.data.fixtures import encode, photo
from tests.helpers import to_numpy

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLASSES = ["red thing", "blue thing", "café"]


def rest_bodies(images, texts):
    """The JSON bodies a REST client POSTs to /v1/models/clip:predict."""
    b64 = [{"b64": base64.b64encode(image).decode()} for image in images]
    return [
        {"instances": b64},  # serving_default, row form
        {"signature_name": "embed_texts", "instances": texts},
        {"signature_name": "similarity", "inputs": {"image_bytes": b64, "texts": texts}},
    ]


def predict_request(images, texts):
    """The gRPC PredictRequest a client sends for `similarity`."""
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "clip"
    request.model_spec.signature_name = "similarity"
    request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto(images))
    request.inputs["texts"].CopyFrom(tf.make_tensor_proto(texts))
    return request


def write_requests(root, model, tokenizer):
    """`serve_exported.py`'s requests: 3 images and 3 texts, their model inputs, the file."""
    images = [encode(photo(0)), encode(photo(1, (70, 30)), "PNG"), encode(photo(2))]
    texts = ["a red thing", "", "a café on the left"]
    pixels = np.stack([image_ops.preprocess_for_eval(
        b, model.image_size, **model.preprocessing.evaluation_options).numpy() for b in images])
    token_ids = np.asarray(tokenizer(texts))
    requests = root / "requests.npz"
    np.savez(requests, image_bytes=np.array(images, dtype=object).astype(bytes),
             texts=np.array(texts), pixels=pixels, token_ids=token_ids)
    return images, texts, pixels, token_ids, requests


def serve(path, requests, out, *rest):
    """Runs `serve_exported.py` on an export (TensorFlow only); returns its responses."""
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tests", "export", "serve_exported.py"), path,
         str(requests), str(out), *map(str, rest)],
        capture_output=True, text=True, timeout=600,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(np.load(out))


def small_tokenizer():
    from keras_clip.data.clip_tokenizer import CLIPTokenizer

    return CLIPTokenizer.train(["a red thing", "a blue thing", "a café"] * 4,
                               vocabulary_size=600, context_length=16)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    if keras.backend.backend() == "jax":
        # The export from JAX is PyTorch's path (the model saved, then built
        # by a TensorFlow process), which the torch pass runs; JAX's saving
        # is clip_model_test's test_saved_model_loads_on_another_backend.
        pytest.skip("exports from JAX run PyTorch's subprocess path")
    root = tmp_path_factory.mktemp("export")
    model = CLIPModel.from_preset("tiny-vit")
    tokenizer = small_tokenizer()
    path = export_saved_model(model, tokenizer, str(root / "clip"), class_names=CLASSES,
                              templates=("a {}.", "the {}"))
    images, texts, pixels, token_ids, requests = write_requests(root, model, tokenizer)
    out = root / "responses.npz"
    rest = root / "rest.json"
    rest.write_text(json.dumps(rest_bodies(images, texts)))
    grpc_request, grpc_response = root / "request.pb", root / "response.pb"
    grpc_request.write_bytes(predict_request(images, texts).SerializeToString())
    responses = serve(path, requests, out, rest, grpc_request, grpc_response)
    from tensorflow_serving.apis import predict_pb2

    response = predict_pb2.PredictResponse()
    response.ParseFromString(grpc_response.read_bytes())
    responses["grpc"] = {k: tf.make_ndarray(v) for k, v in response.outputs.items()}
    return model, tokenizer, path, pixels, token_ids, responses


def test_every_signature_matches_the_model_in_a_process_without_keras(exported):
    model, tokenizer, path, pixels, token_ids, out = exported
    assert out["modules"].size == 0 or "keras_clip" not in out["modules"].tolist()
    images = to_numpy(model.encode_image(pixels))
    texts = to_numpy(model.encode_text(token_ids))
    for key, expected in (("serving_default", images), ("embed_images", images),
                          ("embed_pixels", images), ("embed_texts", texts),
                          ("embed_token_ids", texts)):
        np.testing.assert_allclose(out[key], expected, atol=1e-5, err_msg=key)
    logits = np.exp(to_numpy(model.logit_scale)) * images @ texts.T
    np.testing.assert_allclose(out["similarity_logits"], logits, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(out["similarity_probabilities"].sum(axis=1), 1.0, rtol=1e-6)
    assert out["classify_probabilities"].shape == (3, len(CLASSES))
    best = out["classify_probabilities"].argmax(axis=1)
    assert [c.decode() for c in out["classify_top_class"]] == [CLASSES[i] for i in best]
    for name in ("similarity", "classify"):  # one per image, as a row output must be
        assert out[f"{name}_probability_kind"].tolist() == [b"softmax"] * 3


@pytest.mark.backend_independent
def test_a_converted_siglip_serves_each_pairs_sigmoid(tmp_path):
    # A SigLIP as `convert` makes it: the sigmoid objective (its bias leaves
    # probabilities that do not sum to 1), SentencePiece ids in the graph,
    # and images squashed to the square (write_requests squashes a 70×30).
    from tests.convert.siglip_convert_test import write_siglip_directory

    model, tokenizer, _ = convert_checkpoint("hf", write_siglip_directory(tmp_path / "hf")[1])
    path = export_saved_model(model, tokenizer, str(tmp_path / "siglip"), class_names=CLASSES)
    ops = op_audit.audit(os.path.join(path, "saved_model.pb"))
    assert "TFText>FastSentencepieceTokenize" in ops
    *_, pixels, token_ids, requests = write_requests(tmp_path, model, tokenizer)
    assert (token_ids[:, -1] == 1).all()  # SigLIP's </s>, which pads too
    out = serve(path, requests, tmp_path / "responses.npz")
    images = to_numpy(model.encode_image(pixels))
    for key, expected in (("embed_images", images),
                          ("embed_texts", to_numpy(model.encode_text(token_ids)))):
        np.testing.assert_allclose(out[key], expected, atol=1e-5, err_msg=key)
    logits = (np.exp(to_numpy(model.logit_scale)) * images
              @ to_numpy(model.encode_text(token_ids)).T + to_numpy(model.logit_bias))
    np.testing.assert_allclose(out["similarity_logits"], logits, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(out["similarity_probabilities"], 1 / (1 + np.exp(-logits)),
                               atol=1e-5)
    assert np.abs(out["similarity_probabilities"].sum(axis=1) - 1.0).max() > 0.1
    from keras_clip.evaluation.zero_shot import TEMPLATES, zero_shot_classifier

    classifier = to_numpy(zero_shot_classifier(model, tokenizer, CLASSES, TEMPLATES))
    logits = (np.exp(to_numpy(model.logit_scale)) * images @ classifier.T
              + to_numpy(model.logit_bias))
    np.testing.assert_allclose(out["classify_probabilities"], 1 / (1 + np.exp(-logits)),
                               atol=1e-5)
    best = out["classify_probabilities"].argmax(axis=1)
    assert [c.decode() for c in out["classify_top_class"]] == [CLASSES[i] for i in best]
    for name in ("similarity", "classify"):
        assert out[f"{name}_probability_kind"].tolist() == [b"sigmoid"] * 3


def test_rest_and_grpc_requests_get_the_signatures_answers(exported):
    *_, out = exported
    np.testing.assert_allclose(out["rest_0"], out["embed_images"], atol=1e-6)
    np.testing.assert_allclose(out["rest_1"], out["embed_texts"], atol=1e-6)
    logits_or_probabilities = out["rest_2"]
    assert logits_or_probabilities.shape == (3, 3)
    assert any(np.allclose(logits_or_probabilities, out[k], atol=1e-5)
               for k in ("similarity_logits", "similarity_probabilities"))
    np.testing.assert_allclose(out["grpc"]["logits"], out["similarity_logits"], atol=1e-5)
    np.testing.assert_allclose(out["grpc"]["probabilities"], out["similarity_probabilities"],
                               atol=1e-6)


def test_bad_requests_get_a_clear_error_and_the_next_request_works(exported):
    *_, out = exported
    assert "Unknown image file format" in str(out["bad_image_error"])
    np.testing.assert_allclose(out["after_error"], out["embed_images"])
    assert out["empty_batch"].shape == (0, 64)
    assert out["empty_text"].shape == (1, 64) and np.isfinite(out["empty_text"]).all()


def test_op_audit_lists_the_export_and_rejects_foreign_ops(exported):
    path = exported[2]
    ops = op_audit.audit(os.path.join(path, "saved_model.pb"))
    assert "RegexSplitWithOffsets" in ops and "MatMul" in ops
    # An op of TensorFlow Addons, which no stock server links.
    assert op_audit.foreign_ops({"MatMul", "RegexSplitWithOffsets", "SentencepieceOp",
                                 "Addons>GatherTree"}) == ["Addons>GatherTree"]


def xla_marked_functions(path):
    """Names of the export's functions that TensorFlow must compile with XLA."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as file:
        saved_model.ParseFromString(file.read())
    return [f.signature.name for graph in saved_model.meta_graphs
            for f in graph.graph_def.library.function
            if f.attr["_XlaMustCompile"].b]


def test_xla_export_compiles_the_towers_and_matches_the_model(exported, tmp_path):
    model, tokenizer, default_path, pixels, token_ids, _ = exported
    assert xla_marked_functions(default_path) == []  # the default runs on any TF Serving
    path = export_saved_model(model, tokenizer, str(tmp_path / "xla"), jit_compile=True)
    marked = xla_marked_functions(path)
    assert any("encode_image" in name for name in marked), marked
    assert any("encode_text" in name for name in marked), marked
    op_audit.audit(os.path.join(path, "saved_model.pb"))
    loaded = tf.saved_model.load(path)
    for signature, inputs, expected in (
            ("embed_pixels", pixels, model.encode_image(pixels)),
            ("embed_token_ids", token_ids, model.encode_text(token_ids))):
        function = loaded.signatures[signature]
        name = next(iter(function.structured_input_signature[1]))
        # XLA fuses and reorders float32 arithmetic: within 1e-5 of the model.
        np.testing.assert_allclose(function(**{name: tf.constant(inputs)})["embeddings"],
                                   to_numpy(expected), atol=1e-5, err_msg=signature)


def test_versions_are_never_overwritten(exported, tmp_path):
    path = exported[2]
    directory = os.path.dirname(path)
    assert os.path.basename(path) == "1"
    assert next_version_dir(directory).endswith(os.sep + "2")
    with pytest.raises(FileExistsError, match="Version 1 already exists"):
        next_version_dir(directory, version=1)
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ValueError, match="not a TF Serving model directory"):
        next_version_dir(str(tmp_path))


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="the CLI is the same on every backend; the `exported` fixture "
                           "covers exporting from JAX and PyTorch")
def test_cli_export_writes_the_next_version(tmp_path, capsys):
    from keras_clip import cli
    from keras_clip.convert import save_converted
    from keras_clip.data.clip_tokenizer import CLIPTokenizer

    model = CLIPModel.from_preset("tiny-vit")
    tokenizer = CLIPTokenizer.from_openai(context_length=16)  # tiny-vit's vocabulary
    preset = str(tmp_path / "preset")  # model.keras + tokenizer, as convert writes
    save_converted(model, tokenizer, {"context_length": 16}, preset)
    (tmp_path / "classes.txt").write_text("cat\ndog\n")
    arguments = ["export", "--model", preset, "--output", str(tmp_path / "served"),
                 "--classes", str(tmp_path / "classes.txt")]
    assert cli.main(arguments) == 0
    assert cli.main(arguments[:2] + [os.path.join(preset, "model.keras")] + arguments[3:] + [
        "--tokenizer", os.path.join(preset, "merges.txt"), "--xla"]) == 0
    assert sorted(os.listdir(tmp_path / "served")) == ["1", "2"]
    assert not xla_marked_functions(str(tmp_path / "served" / "1"))
    assert xla_marked_functions(str(tmp_path / "served" / "2"))
    assert cli.main(arguments[:4] + [preset] + arguments[5:]) == 2
    assert "not a TF Serving model directory" in capsys.readouterr().err


@pytest.mark.backend_independent
def test_an_objective_that_does_not_say_what_it_serves_is_refused_at_export():
    from keras_clip.export.serving_module import ServingModule
    from keras_clip.losses import SigmoidObjective

    class Unsaid(SigmoidObjective):
        name, probability_kind = "unsaid", None

    towers = CLIPModel.from_preset("tiny-vit")
    model = CLIPModel(towers.image_encoder, towers.text_encoder, objective=Unsaid())
    with pytest.raises(ValueError, match="must say what its probabilities are"):
        ServingModule(model, small_tokenizer())
