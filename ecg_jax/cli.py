"""Helpers shared by the command-line scripts in scripts/."""

from __future__ import annotations

import os
import sys
from typing import Callable

from ecg_jax.errors import EcgJaxError

XLA_CACHE_ENV = "ECG_JAX_XLA_CACHE"


def configure_jax() -> None:
    """Persistent XLA compilation cache, so a resumed or repeated run skips compiling.

    Compiling a network's training step takes 10-30 s on a CPU; the cache makes
    the second time ~10x faster. $ECG_JAX_XLA_CACHE sets the folder ("off"
    disables it); default ~/.cache/ecg_jax/xla.
    """
    import jax

    path = os.environ.get(XLA_CACHE_ENV, os.path.join(os.path.expanduser("~"), ".cache", "ecg_jax", "xla"))
    if path.lower() in ("off", "none", "0", ""):
        return
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def define_distributed_flags() -> None:
    """`--coordinator_address --num_processes --process_id` for multi-process runs (jax.distributed)."""
    from absl import flags

    flags.DEFINE_string("coordinator_address", None,
                        "HOST:PORT of process 0 of a multi-process run; every process passes the same.")
    flags.DEFINE_integer("num_processes", None, "Number of processes of a multi-process run.")
    flags.DEFINE_integer("process_id", None, "This process's index, 0..num_processes-1.")


def initialize_distributed(coordinator_address: str | None, num_processes: int | None,
                           process_id: int | None) -> None:
    """Join a multi-process run before anything touches a device.

    With the flags, the run is exactly the one they describe. Without them,
    JAX's own cluster detection (SLURM, Open MPI, TPU pods, ...) decides;
    outside any cluster the run is a single process. CPU devices talk to other
    processes through gloo collectives.
    """
    import jax

    given = [v is not None for v in (coordinator_address, num_processes, process_id)]
    if any(given) and not all(given):
        raise EcgJaxError("multi-process runs need all of --coordinator_address, --num_processes and --process_id")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if all(given):
        if num_processes > 1:
            jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                                       process_id=process_id)
        return
    try:
        jax.distributed.initialize()
    except ValueError as e:  # no cluster detected: one process
        if "coordinator_address should be defined" not in str(e):
            raise EcgJaxError(f"jax.distributed could not start from the cluster's environment: {e}") from None


def run_main(main: Callable[[list[str]], None], distributed: bool = False) -> Callable[[list[str]], None]:
    """Wrap an absl `main`: quiet logs, compilation cache, multi-process start (with
    `distributed=True` and `define_distributed_flags()`), user errors as one line + exit 2."""

    def wrapped(argv: list[str]) -> None:
        from absl import flags
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.WARNING)  # no INFO chatter from jax/orbax
        configure_jax()
        try:
            if distributed:
                f = flags.FLAGS
                initialize_distributed(f.coordinator_address, f.num_processes, f.process_id)
            main(argv)
        except EcgJaxError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)

    return wrapped
