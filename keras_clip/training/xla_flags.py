"""The XLA flag keras-clip's own processes train with."""

import os

#: XLA's CPU backend orders a program's ops so that independent ones can run
#: at the same time, which keeps more forward activations alive at once. In
#: plain order, a ModifiedResNet training step at batch 256 needs 4.6 instead
#: of 6.6 GiB of temporary buffers, at the same speed on 2 cores
#: (`benchmarks/README.md`, "Training memory"). Only the order changes, not the
#: arithmetic; the flag concerns CPUs only.
LOW_MEMORY_CPU_SCHEDULE = "--xla_cpu_enable_concurrency_optimized_scheduler=false"


def use_low_memory_cpu_schedule(environ=os.environ):
    """Adds `LOW_MEMORY_CPU_SCHEDULE` to `XLA_FLAGS` unless that flag is set.

    XLA reads `XLA_FLAGS` once, at a process's first JAX or TensorFlow XLA
    computation; `keras-clip` calls this before any. In your own script, set
    `XLA_FLAGS` before starting Python, or call this before building a model.
    A value the user gave for the same flag is kept.
    """
    flags = environ.get("XLA_FLAGS", "")
    if LOW_MEMORY_CPU_SCHEDULE.split("=")[0] not in flags:
        environ["XLA_FLAGS"] = f"{flags} {LOW_MEMORY_CPU_SCHEDULE}".strip()
    return environ
