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


def run_main(main: Callable[[list[str]], None]) -> Callable[[list[str]], None]:
    """Wrap an absl `main`: quiet logs, compilation cache, user errors as one line + exit 2."""

    def wrapped(argv: list[str]) -> None:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.WARNING)  # no INFO chatter from jax/orbax
        configure_jax()
        try:
            main(argv)
        except EcgJaxError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)

    return wrapped
