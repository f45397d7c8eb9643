#!/usr/bin/env bash
# Runs the test suite once per Keras backend and fails if any backend fails.
# Extra arguments go to pytest, e.g. `tests/run_all_backends.sh -m "not slow"`.
# Tests run in TEST_WORKERS pytest-xdist processes (default: one per core, at
# most 4): most of a tiny model's test is single-threaded tracing and Python.
set -u
cd "$(dirname "$0")/.."
failed=()
# One JAX compilation cache for this run: the many tests (and their child
# processes) that train the same tiny models compile each program once. A
# fresh directory each run, so nothing carries over between runs.
jax_cache=$(mktemp -d)
trap 'rm -rf "${jax_cache}"' EXIT
export JAX_COMPILATION_CACHE_DIR="${jax_cache}" JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0
workers="${TEST_WORKERS:-$(python -c 'import os; print(min(os.cpu_count() or 1, 4))')}"
for backend in tensorflow jax torch; do
  echo "=== KERAS_BACKEND=${backend} ==="
  backend_started=$(date +%s)
  settings=()
  if [ "${backend}" = jax ]; then
    # The suite's programs are tiny and compiled once each: LLVM's -O0
    # compiles them faster than the steps then run slower (the JAX pass took
    # 0.75x the time on the cached-gradient and model tests). Outputs are
    # what the tests check, and the benchmarks never run with it.
    settings=(XLA_FLAGS="${XLA_FLAGS:-} --xla_backend_optimization_level=0")
  fi
  if [ "${workers}" -gt 1 ] && [ "${backend}" != jax ]; then
    # One compute thread per worker: TensorFlow's and PyTorch's pools spin,
    # and two workers' pools on the same cores slow both (1.2× and 1.6× here).
    # XLA (JAX) was slower single-threaded, so it keeps its pool.
    settings=(TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=2 OMP_NUM_THREADS=1)
  fi
  env "${settings[@]}" KERAS_BACKEND="${backend}" python -m pytest tests -q -p no:cacheprovider \
    --durations=15 -n "${workers}" "$@" || failed+=("${backend}")
  echo "${backend} took $(( $(date +%s) - backend_started )) s"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "tests failed on: ${failed[*]}"
  exit 1
fi
echo "tests passed on tensorflow, jax and torch"
