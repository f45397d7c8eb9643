"""Ask a TF Serving CLIP for embeddings, over REST or gRPC.

    python examples/tf_serving_client.py cat.jpg "a photo of a cat" "a dog"
    python examples/tf_serving_client.py --grpc localhost:8500 cat.jpg "a cat"

Server: `docker run -p 8500:8500 -p 8501:8501 -v "$PWD/saved_models/clip:/models/clip"
-e MODEL_NAME=clip tensorflow/serving` (see serve_with_tf_serving.md).
gRPC needs `pip install tensorflow-serving-api grpcio`.
"""

import argparse
import base64
import json
import urllib.request


def rest_similarity(url, image_paths, texts):
    """POST the columnar ("inputs") form; images travel as {"b64": ...}."""
    images = []
    for path in image_paths:
        with open(path, "rb") as file:
            images.append({"b64": base64.b64encode(file.read()).decode()})
    body = {"signature_name": "similarity", "inputs": {"image_bytes": images, "texts": texts}}
    request = urllib.request.Request(f"{url}/v1/models/clip:predict",
                                     data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.load(response)["outputs"]


def grpc_similarity(address, image_paths, texts):
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "clip"
    request.model_spec.signature_name = "similarity"
    images = []
    for path in image_paths:
        with open(path, "rb") as file:
            images.append(file.read())
    request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto(images))
    request.inputs["texts"].CopyFrom(tf.make_tensor_proto(texts))
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(address))
    response = stub.Predict(request, timeout=30.0)
    return {key: tf.make_ndarray(value).tolist() for key, value in response.outputs.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image")
    parser.add_argument("texts", nargs="+")
    parser.add_argument("--rest", default="http://localhost:8501")
    parser.add_argument("--grpc", help="host:port of the gRPC endpoint (instead of REST)")
    args = parser.parse_args()
    if args.grpc:
        outputs = grpc_similarity(args.grpc, [args.image], args.texts)
    else:
        outputs = rest_similarity(args.rest, [args.image], args.texts)
    # "softmax": the image's distribution over the texts; "sigmoid" (SigLIP):
    # each text's own probability of matching it.
    kind = outputs.get("probability_kind", ["softmax"])[0]
    print(f"probability ({kind.decode() if isinstance(kind, bytes) else kind})")
    for text, probability in zip(args.texts, outputs["probabilities"][0]):
        print(f"{probability:.3f}  {text}")


if __name__ == "__main__":
    main()
