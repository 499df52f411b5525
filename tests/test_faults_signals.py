"""Ctrl-C (SIGINT) and SIGTERM, through the real command line (issue 20).

Training stopped by a signal prints one line (how far it got, how to resume)
and exits 130 / 143; the rerun ends with the numbers of an uninterrupted run.
A signal that lands while a checkpoint is saved or pruned, or while an output
is renamed into place, waits for that section to end (`interrupts.deferred`),
so no half-written or half-deleted step is left. An interrupted denoise leaves
no output and no temporary file.
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

from ecg_jax import interrupts

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(REPO, "scripts", "train.py")
DENOISE = os.path.join(REPO, "scripts", "denoise.py")
TINY = ["--config", os.path.join(REPO, "configs", "unet.py:smoke"), "--config.data.window=64",
        "--config.data.n_windows=400", "--config.train.batch_size=32", "--config.seeds=1",
        "--config.train.epochs=4", "--config.train.checkpoint_every=1", "--config.train.keep_checkpoints=2",
        "--config.data.source=synthetic"]
C_LOG_NOISE = "WARNING: All log messages before absl::InitializeLog()"


def env_for(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "ECG_JAX_DATA"}
    env.update(ECG_JAX_CACHE=str(tmp_path / "cache"), JAX_PLATFORMS="cpu")
    return env


def results_of(workdir) -> list[dict]:
    with open(os.path.join(workdir, "results.jsonl")) as f:
        return [json.loads(line)["metrics"] for line in f]


def leftovers(folder) -> list[str]:
    return [os.path.join(r, n) for r, ds, fs in os.walk(folder) for n in ds + fs
            if "orbax-checkpoint-tmp" in n or ".tmp" in n or n.startswith(".denoise-")]


def metrics_epochs(workdir) -> list[int]:
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line)["epoch"] for line in f if line.endswith("\n")]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    proc = subprocess.run([sys.executable, TRAIN] + TINY + [f"--workdir={root / 'w'}"], env=env_for(root),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return results_of(root / "w")


@pytest.mark.parametrize("signum,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_training_stopped_by_a_signal_says_so_in_one_line_and_resumes_to_the_same_numbers(
        reference, tmp_path, signum, status):
    workdir = tmp_path / "w"
    env = env_for(tmp_path)
    proc = subprocess.Popen([sys.executable, TRAIN] + TINY + [f"--workdir={workdir}"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 600
        while proc.poll() is None and not metrics_epochs(workdir) and time.time() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == status, (proc.returncode, err[-3000:])
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(C_LOG_NOISE)]
    last = lines[-1]
    assert last.startswith(f"interrupted ({signal.Signals(signum).name}) after epoch "), err[-3000:]
    assert "of chunk 0" in last and f"rerun `python scripts/train.py --workdir {workdir}` to resume" in last
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
    assert not any(line.startswith("interrupted") for line in lines[:-1])
    assert leftovers(workdir) == []

    resumed = subprocess.run([sys.executable, TRAIN, f"--workdir={workdir}"], env=env, capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert results_of(workdir) == reference


@pytest.fixture
def signal_handlers():
    saved = {s: signal.getsignal(s) for s in interrupts.SIGNAL_EXIT}
    interrupts.install_signal_handlers()
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_inside_a_deferred_section_is_raised_when_it_ends(signal_handlers, signum):
    done = []
    with pytest.raises(interrupts.Interrupted) as e:
        with interrupts.deferred():
            os.kill(os.getpid(), signum)
            time.sleep(0.05)          # Python runs the handler here: it only takes note
            done.append("rest of the section")
    assert done == ["rest of the section"] and e.value.signum == signum
    assert e.value.exit_status == {signal.SIGINT: 130, signal.SIGTERM: 143}[signum]
    with pytest.raises(interrupts.Interrupted):   # outside a section: at once
        os.kill(os.getpid(), signum)
        time.sleep(0.05)
        done.append("never")
    assert done == ["rest of the section"]


def test_a_signal_during_a_checkpoint_save_and_prune_waits_for_both(signal_handlers, tmp_path, monkeypatch):
    """checkpoints.save runs orbax's save (write the step, then delete the oldest) as one deferred
    section: a SIGINT that arrives as it starts is raised only after both are done."""
    import jax.numpy as jnp
    import orbax.checkpoint as ocp

    from ecg_jax.train import checkpoints
    from ecg_jax.train.engine import MemberState

    def state(v):   # rng already as raw key data: `_storable` is the identity here
        return MemberState({"w": jnp.full((1, 3), v)}, {}, (), jnp.zeros((1, 2), jnp.uint32), jnp.zeros((1,), bool))

    monkeypatch.setattr(checkpoints, "_storable", lambda s: s)
    mgr = checkpoints.manager(str(tmp_path / "chunk_00"), keep=2)
    checkpoints.save(mgr, 1, state(1.0), {})
    checkpoints.save(mgr, 2, state(2.0), {})
    real_save = ocp.CheckpointManager.save

    def signal_then_save(self, step, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)                       # the handler has run by now: without deferral, no step 3
        return real_save(self, step, *args, **kwargs)

    monkeypatch.setattr(ocp.CheckpointManager, "save", signal_then_save)
    with pytest.raises(interrupts.Interrupted):
        checkpoints.save(mgr, 3, state(3.0), {})
    assert sorted(os.listdir(tmp_path / "chunk_00")) == ["2", "3"]   # written, and the oldest fully pruned
    assert checkpoints.read_meta(mgr, 3)["epoch"] == 3
    assert leftovers(tmp_path) == []


def test_denoise_stopped_by_ctrl_c_leaves_no_output(tmp_path):
    t = np.arange(int(1800 * 360)) / 360            # 30 minutes: several blocks
    x = np.stack([np.sin(2 * np.pi * 1.3 * t), np.cos(2 * np.pi * 0.7 * t)], 1).astype(np.float32)
    np.save(tmp_path / "in.npy", x)
    proc = subprocess.Popen([sys.executable, DENOISE, "in.npy", "--fs", "360", "--output", "out.csv"],
                            cwd=tmp_path, env=env_for(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.time() + 300
        while proc.poll() is None and not any(n.startswith(".denoise-") for n in os.listdir(tmp_path)) \
                and time.time() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, (proc.returncode, err[-3000:])
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(C_LOG_NOISE)]
    assert len(lines) == 1 and lines[0].startswith("interrupted (SIGINT)"), err[-3000:]
    assert sorted(os.listdir(tmp_path)) == ["cache", "in.npy"] or sorted(os.listdir(tmp_path)) == ["in.npy"]
