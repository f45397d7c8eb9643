"""`stress_exported.py EXPORT_DIR REQUESTS.pkl RESULTS.pkl [THREADS]`: a serving load.

Loads an export as TF Serving does (only tensorflow and tensorflow_text are
imported; a test checks that keras_clip never is, and that no keras module
is loaded beyond those `import tensorflow` itself pulls in), calls
each signature once to warm it up, then answers the requests, in their
order, from a pool of threads. A request is `(signature, {input: array})`;
arrays become tensors of their own dtype and shape, as a server turns a
TensorProto into a tensor, so a float64 array is a DT_DOUBLE request.

Each result is `{"ok", "outputs" | "error", "message", "seconds", "start",
"end"}`, with `message` the first line of the error that says what is wrong
(TensorFlow puts "Graph execution error:" and node names around it). Also
written: the peak RSS (KiB) after warm-up and at the end, and the
keras/keras_clip modules loaded after the imports above. On Linux the peak
is the kernel's VmHWM, restarted from the current RSS after warm-up
(`clear_refs`), so the increase is that of the load alone; elsewhere it is
ru_maxrss, and the increase is over the peak of loading and warm-up.
"""

import pickle
import resource
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers RegexSplitWithOffsets, as TF Serving links it)


def keras_modules():
    # TensorFlow 2.21 imports keras itself when keras is installed.
    return {m for m in sys.modules if m.split(".")[0] in ("keras", "keras_clip")}


KERAS_OF_TENSORFLOW = {m for m in keras_modules() if m.split(".")[0] == "keras"}

# Lines TensorFlow wraps around the one that names the problem.
BOILERPLATE = ("Graph execution error", "Detected at node", "<stack traces unavailable>",
               "File \"", "[[{{node")


def first_message_line(error):
    lines = [line.strip() for line in str(getattr(error, "message", error)).splitlines()]
    useful = [line for line in lines if line and not line.startswith(BOILERPLATE)]
    return (useful or lines or [""])[0]


def reset_peak_rss():
    """Restarts VmHWM from the current RSS (Linux >= 4.0); False where it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as file:
            file.write("5")
        return True
    except OSError:
        return False


def peak_rss_kib():
    # Not ru_maxrss: it also holds the peak as it was when any thread exited
    # (TensorFlow's loader starts and ends some), which clear_refs keeps.
    try:
        with open("/proc/self/status") as file:
            return int(next(line for line in file if line.startswith("VmHWM:")).split()[1])
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def answer(signatures, request, clock):
    name, inputs = request
    start = time.perf_counter()
    try:
        tensors = {key: tf.constant(value) for key, value in inputs.items()}
        outputs = {key: value.numpy() for key, value in signatures[name](**tensors).items()}
        result = {"ok": True, "outputs": outputs}
    except (tf.errors.OpError, TypeError, ValueError) as error:
        result = {"ok": False, "error": type(error).__name__,
                  "message": first_message_line(error)}
    end = time.perf_counter()
    return dict(result, seconds=end - start, start=start - clock, end=end - clock)


def main(export_dir, requests_path, results_path, threads=8):
    signatures = tf.saved_model.load(export_dir).signatures
    with open(requests_path, "rb") as file:
        payload = pickle.load(file)
    clock = time.perf_counter()
    for request in payload["warm_up"]:  # traces and first-call allocations, once each
        assert answer(signatures, request, clock)["ok"], request[0]
    peak_reset = reset_peak_rss()
    baseline = peak_rss_kib()
    started = threading.Barrier(threads)

    def wait_for_all():  # every thread up before the first request: real overlap
        started.wait()

    with ThreadPoolExecutor(threads, initializer=wait_for_all) as pool:
        results = list(pool.map(lambda r: answer(signatures, r, clock), payload["requests"]))
    peak = peak_rss_kib()
    modules = sorted(keras_modules() - KERAS_OF_TENSORFLOW)
    with open(results_path, "wb") as file:
        pickle.dump({"results": results, "baseline_kib": baseline, "peak_kib": peak,
                     "peak_reset": peak_reset, "threads": threads, "modules": modules}, file)


if __name__ == "__main__":
    main(*sys.argv[1:4], *map(int, sys.argv[4:5]))
