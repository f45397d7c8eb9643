"""Per-text cost of `CLIPTokenizer` on adversarial captions.

Each case (the texts `tests/data/clip_tokenizer_test.py` bounds) is one
text, tokenized alone by an eager call after a warm-up call: as a Python
string, which runs `clean_text` (ftfy) first, its share shown apart, and
as a `tf.string` tensor, the graph alone (what `tf.data` and a SavedModel
run). Figures are medians of `--repeats` calls. Every case runs in its own
process under `--timeout`, so an implementation that does not answer gives
a row instead of a hang.

    PYTHONPATH=. python benchmarks/tokenizer_cost.py [--json out.json]
    # the same cases through another copy of the module, e.g. an older one:
    git show HEAD~1:keras_clip/data/clip_tokenizer.py > /tmp/old_tokenizer.py
    PYTHONPATH=. python benchmarks/tokenizer_cost.py --module /tmp/old_tokenizer.py
"""

import argparse
import importlib.util
import json
import subprocess
import sys
import time

import numpy as np


def cases():
    """`{name: text}`: the adversarial texts the test bounds, and a short caption."""
    from tests.data.clip_tokenizer_test import adversarial_texts

    return {**adversarial_texts(), "short caption": "A photo of two dogs playing in the snow."}


def load_module(module_path):
    if module_path is None:
        from keras_clip.data import clip_tokenizer

        return clip_tokenizer
    spec = importlib.util.spec_from_file_location("tokenizer_under_test", module_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def time_case(name, module_path, repeats):
    """Median seconds of one call (and of its ftfy part) as JSON."""
    import tensorflow as tf

    module = load_module(module_path)
    tokenizer = module.CLIPTokenizer.from_openai()
    cleaning, clean_text = [], module.clean_text

    def timed_clean(text):
        start = time.perf_counter()
        cleaned = clean_text(text)
        cleaning.append(time.perf_counter() - start)
        return cleaned

    module.clean_text = timed_clean
    text = cases()[name]
    row = {}
    for kind, value in (("tensor", tf.constant([text])), ("python", [text])):
        tokenizer(["warm up"] if kind == "python" else tf.constant(["warm up"]))
        seconds, ftfy = [], []
        for _ in range(repeats):
            cleaning.clear()
            start = time.perf_counter()
            np.asarray(tokenizer(value))
            seconds.append(time.perf_counter() - start)
            ftfy.append(sum(cleaning))
        row[kind] = float(np.median(seconds))
        row[kind + " ftfy"] = float(np.median(ftfy))
    print(json.dumps(row))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", help="a clip_tokenizer.py to load instead of keras_clip's")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per case")
    parser.add_argument("--json", help="write the table here too")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        return time_case(args.case, args.module, args.repeats)
    rows = {}
    print(f"{'case':45s} {'bytes':>9s} {'tensor ms':>10s} {'python ms':>10s} {'of it ftfy':>10s}")
    for name, text in cases().items():
        command = [sys.executable, __file__, "--case", name, "--repeats", str(args.repeats)]
        command += ["--module", args.module] if args.module else []
        try:
            done = subprocess.run(command, capture_output=True, text=True,
                                  timeout=args.timeout, check=True)
            row = json.loads(done.stdout.strip().splitlines()[-1])
            cells = [f"{row[k] * 1e3:10.1f}" for k in ("tensor", "python", "python ftfy")]
        except subprocess.TimeoutExpired:
            row, cells = None, [f"{'>' + str(int(args.timeout)) + ' s':>10s}"] * 3
        rows[name] = row
        print(f"{name:45s} {len(text.encode()):9d} {' '.join(cells)}", flush=True)
    if args.json:
        with open(args.json, "w") as file:
            json.dump(rows, file, indent=1)


if __name__ == "__main__":
    main()
