"""Process-global settings (`ecg_jax/process_settings.py`) are made by the entry points, before JAX starts.

`train.gpu_deterministic=True` must reach $XLA_FLAGS from every subcommand
that runs a config, whether the config comes from `--config` or from a
workdir's config.json, and before any backend has started (XLA reads its
flags once). Each case runs the real front door (`ecg_jax.commands.main`) in
a fresh process with the subcommand's `main` replaced by a probe that prints
what it finds: the flags are then exactly what the real `main` would start
JAX with.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ecg_jax.process_settings import GPU_DETERMINISM_FLAG, apply_for_command, check_gpu_determinism, command_config

PROBE = r"""
import json, os, sys
from ecg_jax import cli, commands

real_run_main = cli.run_main

def probe(argv):
    from jax._src import xla_bridge
    print("PROBE " + json.dumps({"xla_flags": os.environ.get("XLA_FLAGS", ""),
                                 "backend_started": xla_bridge.backends_are_initialized()}))

cli.run_main = lambda main, distributed=False: real_run_main(probe, distributed)
commands.main(sys.argv[1:])
"""


def probe(args: list[str], tmp_path) -> dict:
    env = {**os.environ, "ECG_JAX_XLA_CACHE": "off"}
    env.pop("XLA_FLAGS", None)
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("PROBE ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len("PROBE "):])


@pytest.fixture
def deterministic_workdir(tmp_path):
    """A workdir whose config.json (as training saves it) asks for deterministic GPU kernels."""
    import importlib.util

    from ecg_jax.cli import config_file
    from ecg_jax.config_utils import resolve_config, save_config

    path = config_file("unet:smoke").partition(":")[0]
    spec = importlib.util.spec_from_file_location("_unet_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config("smoke")
    config.train.gpu_deterministic = True
    workdir = tmp_path / "w"
    workdir.mkdir()
    save_config(resolve_config(config), str(workdir / "config.json"))
    return workdir


ON = "--config.train.gpu_deterministic=True"

# Every subcommand that runs an experiment config, given on the command line.
FROM_CONFIG_FLAG = {
    "train": ["train", "--config", "unet:smoke", ON, "--workdir", "w"],
    "reproduce": ["reproduce", "--config", "paper:smoke", ON, "--workdir", "r"],
    "baselines": ["baselines", "--config", "default", ON, "--workdir", "b"],
    "prepare": ["prepare", "--config", "default", ON],
    "benchmark-data": ["benchmark-data", "--config", "default", ON],
}
# ... and those that take it from a workdir's config.json.
FROM_WORKDIR = {
    "train (resume)": ["train", "--workdir", "{w}"],
    "evaluate": ["evaluate", "--workdir", "{w}"],
    "export": ["export", "--workdir", "{w}", "--output", "x.npz"],
    "denoise": ["denoise", "in.csv", "--workdir", "{w}", "--output", "out.csv", "--fs", "360"],
}


@pytest.mark.parametrize("name", FROM_CONFIG_FLAG)
def test_gpu_determinism_reaches_xla_flags_from_the_config_flag(name, tmp_path):
    seen = probe(FROM_CONFIG_FLAG[name], tmp_path)
    assert GPU_DETERMINISM_FLAG in seen["xla_flags"].split()
    assert not seen["backend_started"]


@pytest.mark.parametrize("name", FROM_WORKDIR)
def test_gpu_determinism_reaches_xla_flags_from_the_workdir(name, deterministic_workdir, tmp_path):
    args = [a.format(w=deterministic_workdir) for a in FROM_WORKDIR[name]]
    seen = probe(args, tmp_path)
    assert GPU_DETERMINISM_FLAG in seen["xla_flags"].split()
    assert not seen["backend_started"]


def test_without_it_xla_flags_are_left_alone(tmp_path):
    seen = probe(["train", "--config", "unet:smoke", "--workdir", "w"], tmp_path)
    assert seen["xla_flags"] == ""


def test_command_config_prefers_the_config_flag_then_the_workdir(deterministic_workdir):
    class Flag:
        def __init__(self, value):
            self.value = value

    saved = command_config({"workdir": Flag(str(deterministic_workdir))})
    assert saved["train"]["gpu_deterministic"] is True
    import ml_collections
    given = ml_collections.ConfigDict({"train": {"gpu_deterministic": False}})
    assert command_config({"config": Flag(given), "workdir": Flag(str(deterministic_workdir))}) is given
    assert command_config({"workdir": Flag(str(deterministic_workdir / "missing"))}) is None
    assert command_config({}) is None


def test_library_code_does_not_set_it(monkeypatch):
    """train_and_evaluate only checks: on a CPU backend the flag changes nothing, so no error and no change."""
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    check_gpu_determinism(True)
    assert "XLA_FLAGS" not in os.environ


def test_too_late_is_one_clear_error(monkeypatch):
    """Once a backend has started, asking for it is a ConfigError naming how to set it."""
    import jax.numpy as jnp

    from ecg_jax.errors import ConfigError

    jnp.zeros(1).block_until_ready()   # the backend has started
    monkeypatch.delenv("XLA_FLAGS", raising=False)

    class Flag:
        value = {"train": {"gpu_deterministic": True}}

    with pytest.raises(ConfigError, match="before JAX starts"):
        apply_for_command({"config": Flag()})
