"""Input workers on localhost: bytes each reads and examples/s, 1 vs 2 workers.

    PYTHONPATH=. python benchmarks/input_workers.py --records 4096 --shards 8 --json out.json

Writes `--shards` TFRecord shards of `--records` random 224×224 JPEGs (with
stored token ids), then runs one pass of `make_dataset(training=True)` (random
resized crop to 224, batches of 64) in fresh processes, the 2-worker rows
with both workers at once:

- 1 worker: the whole pass, in one process;
- 2 workers, `input_sharding="files"`: each its own shards (the default);
- 2 workers, `input_sharding="examples"`: each reads every shard and keeps
  every other example (the one-device order, opt-in).

Bytes read are the kernel's count for each worker process (`/proc/self/io`,
`rchar`) during the pass; examples/s is each worker's examples over its
wall time, and the row's total is all examples over the slowest worker's
time. Both workers share this machine's cores, so the total shows what one
host's cores deliver, not what two hosts would.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

SIZE, BATCH = 224, 64


def read_bytes():
    with open("/proc/self/io") as file:
        return next(int(line.split()[1]) for line in file if line.startswith("rchar"))


def worker(pattern, num_workers, index, sharding):
    """One pass as one input worker; prints a JSON line of what it did."""
    from keras_clip.data.dataset import make_dataset

    def dataset():
        return make_dataset(pattern, image_size=SIZE, batch_size=BATCH, training=True,
                            seed=0, deterministic=True, drop_remainder=False,
                            input_worker=(num_workers, index), input_sharding=sharding)

    for _ in dataset().take(1):  # warm-up: TensorFlow's first-use reads and traces
        pass
    data = dataset()
    before, start = read_bytes(), time.perf_counter()
    examples = sum(int(batch["images"].shape[0]) for batch in data)
    seconds = time.perf_counter() - start
    print(json.dumps({"index": index, "examples": examples, "seconds": seconds,
                      "bytes_read": read_bytes() - before}))


def run_row(pattern, num_workers, sharding):
    processes = [subprocess.Popen(
        [sys.executable, __file__, "--worker", pattern, str(num_workers), str(index), sharding],
        stdout=subprocess.PIPE, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        for index in range(num_workers)]
    results = []
    for process in processes:
        output, _ = process.communicate()
        if process.returncode:
            raise SystemExit(f"worker failed ({process.returncode})")
        results.append(json.loads(output.strip().splitlines()[-1]))
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=4096)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        pattern, num_workers, index, sharding = args.worker
        return worker(pattern, int(num_workers), int(index), sharding)

    from keras_clip.data.synthetic_pairs import write_synthetic_tfrecords

    scratch = tempfile.mkdtemp(prefix="input-workers-")
    pattern = write_synthetic_tfrecords(scratch, count=args.records, num_shards=args.shards,
                                        image_size=SIZE)
    total = sum(os.path.getsize(os.path.join(scratch, name)) for name in os.listdir(scratch)
                if name.endswith(".tfrecord"))
    print(f"{args.records} records in {args.shards} shards, {total / 2**20:.1f} MiB")
    print("| workers | input_sharding | bytes read per worker (× the data) | examples per "
          "worker | examples/s per worker | examples/s, all workers |")
    print("|---|---|---|---|---|---|")
    rows = []
    for num_workers, sharding in ((1, "files"), (2, "files"), (2, "examples")):
        results = run_row(pattern, num_workers, sharding)
        slowest = max(result["seconds"] for result in results)
        row = {"workers": num_workers, "input_sharding": sharding, "results": results,
               "bytes_read_fraction": [r["bytes_read"] / total for r in results],
               "examples_per_second_total": sum(r["examples"] for r in results) / slowest}
        rows.append(row)
        label = "—" if num_workers == 1 else sharding
        print(f"| {num_workers} | {label} | "
              + ", ".join(f"{fraction:.2f}" for fraction in row["bytes_read_fraction"])
              + " | " + ", ".join(str(r["examples"]) for r in results)
              + " | " + ", ".join(f"{r['examples'] / r['seconds']:.0f}" for r in results)
              + f" | {row['examples_per_second_total']:.0f} |")
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"records": args.records, "shards": args.shards, "bytes": total,
                       "rows": rows}, file, indent=2)


if __name__ == "__main__":
    main()
