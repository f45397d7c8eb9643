"""Checks a SavedModel uses only ops a stock TF Serving binary has."""

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

# tensorflow-text ops our tokenizers use: CLIPTokenizer's regex split and
# SigLIPTokenizer's SentencePiece models (the fast unigram kernel, or the
# library's). TF Serving's model server links tensorflow-text's op library
# (SUPPORTED_TENSORFLOW_OPS in its model_servers/BUILD names
# "@org_tensorflow_text//tensorflow_text:ops_lib", which holds all three).
TF_SERVING_TEXT_OPS = frozenset({"RegexSplitWithOffsets", "TFText>FastSentencepieceTokenize",
                                 "SentencepieceOp", "SentencepieceTokenizeOp"})


def graph_ops(saved_model_pb):
    """Every op type in a `saved_model.pb`'s graphs and function library."""
    saved_model = saved_model_pb2.SavedModel()
    with open(saved_model_pb, "rb") as file:
        saved_model.ParseFromString(file.read())
    ops = set()
    for meta_graph in saved_model.meta_graphs:
        ops |= {node.op for node in meta_graph.graph_def.node}
        for function in meta_graph.graph_def.library.function:
            ops |= {node.op for node in function.node_def}
    return ops


def foreign_ops(ops):
    """The ops that are neither core TensorFlow nor TF Serving's text ops."""
    return sorted(op for op in ops
                  if not hasattr(tf.raw_ops, op) and op not in TF_SERVING_TEXT_OPS)


def audit(saved_model_pb):
    """Sorted op list of the export; raises if any op would not load in TF Serving."""
    ops = graph_ops(saved_model_pb)
    foreign = foreign_ops(ops)
    if foreign:
        raise ValueError(
            f"The export uses ops TF Serving does not ship: {', '.join(foreign)}. "
            "Only core TensorFlow and tensorflow-text's "
            f"{', '.join(sorted(TF_SERVING_TEXT_OPS))} are allowed."
        )
    return sorted(ops)
