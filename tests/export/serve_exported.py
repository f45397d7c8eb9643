"""`serve_exported.py EXPORT_DIR REQUESTS.npz OUT.npz [REST.json GRPC.pb RESPONSE.pb]`.

Loads an export the way a server does: only tensorflow and tensorflow_text
are imported (a test checks neither keras nor keras_clip gets loaded by
us), runs each signature on the requests, and saves the responses.
"""

import sys

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers RegexSplitWithOffsets, as TF Serving links it)

export_dir, requests_path, out_path = sys.argv[1:4]
loaded = tf.saved_model.load(export_dir)
requests = np.load(requests_path, allow_pickle=False)
images = tf.constant(list(requests["image_bytes"]), tf.string)
texts = tf.constant([t.encode() for t in requests["texts"]], tf.string)
signatures = loaded.signatures
out = {
    "serving_default": signatures["serving_default"](image_bytes=images)["embeddings"],
    "embed_images": signatures["embed_images"](image_bytes=images)["embeddings"],
    "embed_texts": signatures["embed_texts"](texts=texts)["embeddings"],
    "embed_pixels": signatures["embed_pixels"](
        pixels=tf.constant(requests["pixels"]))["embeddings"],
    "embed_token_ids": signatures["embed_token_ids"](
        token_ids=tf.constant(requests["token_ids"]))["embeddings"],
}
similarity = signatures["similarity"](image_bytes=images, texts=texts)
out["similarity_logits"] = similarity["logits"]
out["similarity_probabilities"] = similarity["probabilities"]
out["similarity_probability_kind"] = similarity["probability_kind"].numpy().astype(bytes)
classify = signatures["classify"](image_bytes=images)
out["classify_probabilities"] = classify["probabilities"]
out["classify_top_class"] = classify["top_class"].numpy().astype(bytes)
out["classify_probability_kind"] = classify["probability_kind"].numpy().astype(bytes)
# Bad requests: a clear error, and the server keeps answering.
try:
    signatures["embed_images"](image_bytes=tf.constant([b"not an image"]))
    out["bad_image_error"] = np.array("")
except tf.errors.InvalidArgumentError as error:
    out["bad_image_error"] = np.array(error.message)
out["after_error"] = signatures["embed_images"](image_bytes=images)["embeddings"]
out["empty_batch"] = signatures["embed_images"](
    image_bytes=tf.constant([], tf.string))["embeddings"]
out["empty_text"] = signatures["embed_texts"](texts=tf.constant([""]))["embeddings"]
# REST `:predict` bodies, decoded as TF Serving does: {"b64": ...} → bytes,
# the row form ("instances") batched, the columnar form ("inputs") as is.
if len(sys.argv) > 4:
    import base64
    import json

    def decode(value):
        if isinstance(value, dict) and set(value) == {"b64"}:
            return base64.b64decode(value["b64"])
        if isinstance(value, list):
            return [decode(v) for v in value]
        return value

    with open(sys.argv[4]) as file:
        bodies = json.load(file)
    for i, body in enumerate(bodies):
        signature = signatures[body.get("signature_name", "serving_default")]
        if "instances" in body:
            rows = [decode(row) for row in body["instances"]]
            name = next(iter(signature.structured_input_signature[1]))
            inputs = {name: tf.constant(rows)}
        else:
            inputs = {k: tf.constant(decode(v)) for k, v in body["inputs"].items()}
        # The first numeric output by name (similarity's logits, not probability_kind).
        answers = signature(**inputs)
        out[f"rest_{i}"] = next(answers[k] for k in sorted(answers)
                                if answers[k].dtype != tf.string)
    # gRPC: a serialized PredictRequest in, a serialized PredictResponse out.
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    with open(sys.argv[5], "rb") as file:
        request.ParseFromString(file.read())
    signature = signatures[request.model_spec.signature_name]
    outputs = signature(**{name: tf.constant(tf.make_ndarray(proto))
                           for name, proto in request.inputs.items()})
    response = predict_pb2.PredictResponse()
    response.model_spec.CopyFrom(request.model_spec)
    for name, value in outputs.items():
        response.outputs[name].CopyFrom(tf.make_tensor_proto(value.numpy()))
    with open(sys.argv[6], "wb") as file:
        file.write(response.SerializeToString())
out["modules"] = np.array(sorted({m.split(".")[0] for m in sys.modules} & {"keras", "keras_clip"}))
np.savez(out_path, **{k: np.asarray(v) for k, v in out.items()})
