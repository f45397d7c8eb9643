#!/usr/bin/env bash
# Runs the test suite once per Keras backend and fails if any backend fails.
# Extra arguments go to pytest, e.g. `tests/run_all_backends.sh -m "not slow"`.
set -u
cd "$(dirname "$0")/.."
failed=()
for backend in tensorflow jax torch; do
  echo "=== KERAS_BACKEND=${backend} ==="
  KERAS_BACKEND="${backend}" python -m pytest tests -q -p no:cacheprovider --durations=15 "$@" \
    || failed+=("${backend}")
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "tests failed on: ${failed[*]}"
  exit 1
fi
echo "tests passed on tensorflow, jax and torch"
