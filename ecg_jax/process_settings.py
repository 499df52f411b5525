"""Process-global settings that XLA reads once, when its backend starts.

Only the entry points make them (`cli.run_main`, before the subcommand's
`main` and before anything can start a backend); library code never changes
the environment of the process it runs in. A library caller (a notebook)
that wants a setting makes it the same way, first thing:

    from ecg_jax.process_settings import apply_gpu_determinism
    apply_gpu_determinism(True)     # before the first JAX computation

`train.gpu_deterministic` is the one such setting a config carries: XLA's
GPU kernels then avoid atomics, so a resumed run is bit-exact on GPUs too.
"""

from __future__ import annotations

import json
import os

from ecg_jax.errors import ConfigError

GPU_DETERMINISM_FLAG = "--xla_gpu_deterministic_ops=true"


def gpu_determinism_applied() -> bool:
    return GPU_DETERMINISM_FLAG in os.environ.get("XLA_FLAGS", "").split()


def apply_gpu_determinism(enabled: bool) -> None:
    """Add `GPU_DETERMINISM_FLAG` to $XLA_FLAGS; a ConfigError once a backend has started (too late)."""
    if not enabled or gpu_determinism_applied():
        return
    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized():
        raise ConfigError("train.gpu_deterministic=True must be set before JAX starts: "
                          f"export XLA_FLAGS='{GPU_DETERMINISM_FLAG}' or call "
                          "ecg_jax.process_settings.apply_gpu_determinism(True) first thing")
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {GPU_DETERMINISM_FLAG}".strip()


def check_gpu_determinism(enabled: bool) -> None:
    """What library code does instead of setting it: a run that asks for deterministic GPU kernels and
    would not get them stops with one line. (On other backends the flag changes nothing.)"""
    if not enabled or gpu_determinism_applied():
        return
    import jax

    if jax.default_backend() == "gpu":
        raise ConfigError("train.gpu_deterministic=True, but XLA_FLAGS lacks "
                          f"{GPU_DETERMINISM_FLAG} and JAX has started: run through `ecg-jax`, or export "
                          f"XLA_FLAGS='{GPU_DETERMINISM_FLAG}' (or call "
                          "ecg_jax.process_settings.apply_gpu_determinism(True)) before JAX starts")


def command_config(flag_values):
    """The experiment config a subcommand will run: its `--config` value, else `--workdir`'s config.json
    (a resumed or evaluated run), else None. Read from parsed absl flags, without starting JAX."""
    if "config" in flag_values:
        value = flag_values["config"].value
        if value is not None and hasattr(value, "get"):
            return value
    if "workdir" in flag_values and flag_values["workdir"].value:
        path = os.path.join(flag_values["workdir"].value, "config.json")
        try:
            with open(path) as f:
                config = json.load(f)
        except (OSError, ValueError, RecursionError):   # no workdir yet, or a damaged file: the command says so
            return None
        return config if isinstance(config, dict) else None   # JSON of another type: damaged, as above
    return None


def apply_for_command(flag_values) -> None:
    """Every process-global setting the subcommand's config asks for (called by `cli.run_main`)."""
    config = command_config(flag_values)
    train = config.get("train") if config is not None else None
    apply_gpu_determinism(bool(train.get("gpu_deterministic", False)) if train else False)
