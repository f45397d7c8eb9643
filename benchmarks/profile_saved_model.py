"""Where an exported SavedModel's `embed_pixels` spends its time, per op type.

Exports the benchmark's ViT or ResNet (random weights) as `export_saved_model`
does, runs `embed_pixels` on a batch under TensorFlow's profiler, and prints
each op type's time summed over threads, per call: the graph executor a
served model runs on, without XLA.

    python benchmarks/profile_saved_model.py [--config vit|resnet] [--batch 64] [--calls 3]
"""

import argparse
import collections
import glob
import os
import sys
import tempfile

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.throughput_workers import CONFIGS, exported_embed_pixels

# Framework bookkeeping the profiler also records; only kernels are listed.
WRAPPERS = ("Process", "signature_wrapper", "TFE_Py", "Eager", "__inference", "Run",
            "FunctionRun", "ExecutorDoneCallback", "ParallelFor")


def op_times(logdir, calls):
    """`{op type: ms per call}` from the profiler's host-CPU trace."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    with open(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)[0],
              "rb") as file:
        space.ParseFromString(file.read())
    totals = collections.Counter()
    for plane in space.planes:
        names = {key: value.name for key, value in plane.event_metadata.items()}
        for line in plane.lines:
            for event in line.events:
                name = names.get(event.metadata_id, "?").split(":")[-1].strip()
                if not name.startswith(WRAPPERS):
                    totals[name] += event.duration_ps / 1e9 / calls
    return totals


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="vit", choices=list(CONFIGS))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--calls", type=int, default=3)
    args = parser.parse_args()

    import tensorflow as tf

    call = exported_embed_pixels(args.config, args.batch)
    for _ in range(2):
        call()
    logdir = tempfile.mkdtemp()
    tf.profiler.experimental.start(logdir)
    for _ in range(args.calls):
        call()
    tf.profiler.experimental.stop()
    totals = op_times(logdir, args.calls)
    everything = sum(totals.values())
    print(f"{args.config}, batch {args.batch}: {everything:.0f} ms of kernel time per call "
          "(summed over threads)")
    for op, ms in totals.most_common(15):
        print(f"  {op:28s} {ms:8.1f} ms  {100 * ms / everything:5.1f}%")


if __name__ == "__main__":
    main()
