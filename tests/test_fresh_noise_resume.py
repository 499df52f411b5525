"""Issue 31: the fresh-noise training (the shipped denoiser's recipe) survives a stop.

Through the real CLI: a run stopped by Ctrl-C (SIGINT) and then by kill -9,
each time resumed with `ecg-jax train --workdir W` alone, ends with the same
weights, bit for bit, as the same run never stopped; a resume with another
config is refused in one line and changes nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = ["--config=denoiser:fresh,smoke", "--config.fresh.steps=24", "--config.fresh.eval_every=2",
          "--config.fresh.val_windows=64", "--config.fresh.mains_probability=0.3",
          "--config.fresh.dc_step_probability=0.2"]

pytestmark = pytest.mark.slow


def _env(shared_data_dir) -> dict:
    return {**os.environ, "ECG_JAX_DATA": str(shared_data_dir), "JAX_PLATFORMS": "cpu"}


def _train(args, env, **kw):
    return subprocess.Popen([sys.executable, "-m", "ecg_jax", "train", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _checkpoint_step(workdir) -> int:
    path = os.path.join(workdir, "checkpoint.npz")
    try:
        with np.load(path) as a:
            return json.loads(str(a["progress"]))["step"]
    except (OSError, ValueError, KeyError, EOFError):
        return 0


def _stop_after(workdir, step: int, signum: int, env, args) -> subprocess.CompletedProcess:
    proc = _train(args, env)
    deadline = time.time() + 600
    while _checkpoint_step(workdir) < step and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be stopped: " + proc.stderr.read()[-2000:]
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _weights(path) -> dict:
    with np.load(path) as a:
        return {k: a[k] for k in a.files if k != "meta"}


def _losses(workdir) -> list:
    with open(os.path.join(workdir, "log.jsonl")) as f:
        return [(r["step"], r["loss"], r["val_gain_db"]) for r in map(json.loads, f)]


def test_fresh_noise_training_resumes_after_ctrl_c_and_kill_9_to_identical_weights(shared_data_dir, tmp_path):
    env = _env(shared_data_dir)
    whole, stopped = str(tmp_path / "whole"), str(tmp_path / "stopped")
    proc = _train([*CONFIG, f"--workdir={whole}"], env)
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]

    first = _stop_after(stopped, 4, signal.SIGINT, env, [*CONFIG, f"--workdir={stopped}"])
    assert first.returncode == 130, first.stderr[-3000:]
    last_line = first.stderr.strip().splitlines()[-1]
    assert f"ecg-jax train --workdir {stopped}" in last_line and "Traceback" not in first.stderr, first.stderr[-3000:]
    at_sigint = _checkpoint_step(stopped)
    assert 4 <= at_sigint < 24

    # A resume with another recipe is refused in one line, before anything is written.
    before = os.stat(os.path.join(stopped, "checkpoint.npz")).st_mtime_ns
    other = _train([*CONFIG, "--config.fresh.learning_rate=0.01", f"--workdir={stopped}"], env)
    _, other_err = other.communicate(timeout=300)
    assert other.returncode == 2, other_err[-3000:]
    assert "another config" in other_err and "fresh.learning_rate" in other_err, other_err[-3000:]
    assert os.stat(os.path.join(stopped, "checkpoint.npz")).st_mtime_ns == before

    second = _stop_after(stopped, at_sigint + 4, signal.SIGKILL, env, [f"--workdir={stopped}"])
    assert second.returncode == -signal.SIGKILL
    at_kill = _checkpoint_step(stopped)
    assert at_sigint < at_kill < 24

    proc = _train([f"--workdir={stopped}"], env)
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]
    assert f"checkpoint.npz at step {at_kill}" in out, out[-3000:]

    assert _losses(stopped) == _losses(whole)
    for name in ("best.npz", "last.npz"):
        a, b = _weights(os.path.join(whole, name)), _weights(os.path.join(stopped, name))
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=f"{name}:{k}")
