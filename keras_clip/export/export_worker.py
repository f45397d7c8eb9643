"""`python -m keras_clip.export.export_worker SCRATCH`: the TensorFlow side of an export.

Run with `KERAS_BACKEND=tensorflow` by `export_saved_model` on other backends;
SCRATCH holds `model.keras`, the tokenizer's files (`vocab.json`/`merges.txt`
or `spiece.model`), and
`request.json` (the local path to write, class names, templates, jit_compile).
"""

import json
import os
import sys

if __name__ == "__main__":
    from keras_clip.data.tokenizer_spec import load_tokenizer
    from keras_clip.export.saved_model import write_saved_model
    from keras_clip.models.loading import read_model

    scratch = sys.argv[1]
    with open(os.path.join(scratch, "request.json")) as file:
        request = json.load(file)
    # Serving needs the weights only, not the optimizer state.
    model = read_model(os.path.join(scratch, "model.keras"), compile=False)
    tokenizer = load_tokenizer(scratch, context_length=request["context_length"])
    write_saved_model(model, tokenizer, request["path"], class_names=request["class_names"],
                      templates=request["templates"], jit_compile=request["jit_compile"])
