"""A full disk, through the real command line (issue 20).

Two ways to fill it: a real 40 MiB tmpfs (where this process may mount one: root
on Linux; skipped with the reason otherwise), and a simulated ENOSPC raised at
the write call with the very text tensorstore gives orbax (always run). Each
checks the one line on stderr (folder, what was being written, free space),
the exit status, that no temporary folder is left, that the finished chunk's
results and the earlier checkpoints are kept, and that the rerun ends with the
numbers of an uninterrupted run. The free-space check counts what a resumed
run has written already.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from ecg_jax import interrupts
from ecg_jax.workdir import WorkdirNotWritable, check_writable, disk_margin

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(REPO, "scripts", "train.py")
DENOISE = os.path.join(REPO, "scripts", "denoise.py")
# Two programs of one member each (max_members_per_program=1): chunk 0 finishes before chunk 1 saves.
TINY = ["--config", os.path.join(REPO, "configs", "unet.py:smoke"), "--config.data.window=64",
        "--config.data.n_windows=400", "--config.train.batch_size=32", "--config.seeds=2",
        "--config.train.epochs=2", "--config.train.checkpoint_every=1", "--config.train.keep_checkpoints=3",
        "--config.train.max_members_per_program=1", "--config.data.source=synthetic"]
C_LOG_NOISE = "WARNING: All log messages before absl::InitializeLog()"
ORBAX_ENOSPC = ("RESOURCE_EXHAUSTED: Error writing \"a/0\" in OCDBT database at local file \"{path}/\": Failed "
                "writing: \"{path}/d/c64048\": Failed to write 3043328 bytes to file 14: No space left on device "
                "[os_error_code='28']")

# Run a script with orbax's save failing as on a full disk for chunk_01's first step: the temporary
# folder half written, then tensorstore's RESOURCE_EXHAUSTED error.
SIMULATED_FULL_DISK = """
import os, runpy, sys
import orbax.checkpoint as ocp

real_save = ocp.CheckpointManager.save

def save(self, step, *args, **kwargs):
    directory = str(self.directory)
    if directory.endswith("chunk_01") and step == 1:
        partial = os.path.join(directory, "1.orbax-checkpoint-tmp", "state.orbax-checkpoint-tmp", "ocdbt.process_0")
        os.makedirs(partial)
        with open(os.path.join(partial, "manifest.ocdbt"), "wb") as f:
            f.write(b"x" * 4096)
        raise ValueError(%r.format(path=partial))
    return real_save(self, step, *args, **kwargs)

ocp.CheckpointManager.save = save
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
""" % ORBAX_ENOSPC


def env_for(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "ECG_JAX_DATA"}
    env.update(ECG_JAX_CACHE=str(tmp_path / "cache"), JAX_PLATFORMS="cpu")
    return env


def run(args, env, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable] + args, env=env, capture_output=True, text=True, timeout=timeout)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith(C_LOG_NOISE)]


def results_of(workdir) -> dict:
    with open(os.path.join(workdir, "results.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    return {(r["noise_type"], r["snr_db"], r["seed"]): r["metrics"] for r in rows}


def leftovers(folder) -> list[str]:
    """Temporary files and folders anything left behind."""
    found = []
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            if "orbax-checkpoint-tmp" in name or ".tmp" in name or name.startswith((".denoise-", ".plot-")):
                found.append(os.path.join(root, name))
    return found


def first_chunk(results: dict) -> dict:
    """The rows of chunk 0: seed 0 (one member per program)."""
    return {k: v for k, v in results.items() if k[2] == 0}


def steps(workdir, chunk) -> list[str]:
    folder = os.path.join(workdir, "checkpoints", f"chunk_{chunk:02d}")
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run on an ordinary disk."""
    root = tmp_path_factory.mktemp("reference")
    proc = run([TRAIN] + TINY + [f"--workdir={root / 'w'}"], env_for(root))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root, results_of(root / "w")


def assert_one_line_disk_full(proc, *needles) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    errors = [line for line in error_lines(proc.stderr) if line.startswith("error:")]
    assert len(errors) == 1 and errors[0] == error_lines(proc.stderr)[-1], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "RESOURCE_EXHAUSTED" not in proc.stderr, proc.stderr[-3000:]
    line = errors[0]
    assert "no space left in" in line and " free)" in line, line
    for needle in needles:
        assert needle in line, line
    return line


@pytest.fixture
def small_disk(tmp_path):
    """A 40 MiB tmpfs mounted at tmp_path/disk (skipped where mounting is not allowed)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({(proc.stderr or proc.stdout).strip() or proc.returncode}); "
                    "the simulated full disk covers the same code")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(mount, leave: int) -> str:
    """Fill the file system of `mount` up to `leave` free bytes with one ballast file; its path."""
    ballast = os.path.join(mount, "ballast")
    size = shutil.disk_usage(mount).free - leave + (os.path.getsize(ballast) if os.path.exists(ballast) else 0)
    with open(ballast, "ab") as f:
        os.posix_fallocate(f.fileno(), 0, max(1, size))
    return ballast


def test_simulated_full_disk_while_a_checkpoint_is_written(reference, tmp_path):
    """Always runs: ENOSPC (as tensorstore reports it to orbax) in chunk 1's first save."""
    _, expected = reference
    workdir = tmp_path / "w"
    env = env_for(tmp_path)
    proc = run(["-c", SIMULATED_FULL_DISK, TRAIN] + TINY + [f"--workdir={workdir}"], env)
    assert_one_line_disk_full(proc, f"{workdir}/checkpoints/chunk_01", "the checkpoint after epoch 1",
                              f"rerun `python scripts/train.py --workdir {workdir}` to resume")
    assert leftovers(workdir) == []                       # the half-written step is gone
    assert steps(workdir, 0) == ["1", "2"]                # chunk 0's checkpoints are kept
    assert results_of(workdir) == first_chunk(expected)   # and so are its results

    resumed = run([TRAIN, f"--workdir={workdir}"], env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert results_of(workdir) == expected                # the numbers of the uninterrupted run


def test_full_tmpfs_while_a_checkpoint_is_written_then_resume_on_a_nearly_full_disk(reference, small_disk):
    """A real 40 MiB tmpfs filled while chunk 1 trains; then a rerun with less free space than the
    whole run needs, but enough for what is still to be written."""
    from ecg_jax.config_utils import load_config_json
    from ecg_jax.train.experiment import Experiment
    from ecg_jax.train.loop import checkpoint_bytes, written_checkpoint_bytes

    _, expected = reference
    workdir = small_disk / "w"
    env = env_for(small_disk.parent)
    proc = subprocess.Popen([sys.executable, TRAIN] + TINY + [f"--workdir={workdir}"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Chunk 0's results are written when it ends: fill the disk then, before chunk 1's first save.
        deadline = time.time() + 600
        while proc.poll() is None and not (workdir / "results.jsonl").exists() and time.time() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        ballast = fill(small_disk, leave=200 * 1024)
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    proc = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    line = assert_one_line_disk_full(proc, f"{workdir}/checkpoints/chunk_01", "the checkpoint after epoch 1")
    assert "KiB free" in line, line
    assert leftovers(workdir) == []
    assert steps(workdir, 0) == ["1", "2"] and steps(workdir, 1) == []
    assert results_of(workdir) == first_chunk(expected)

    # Leave less free space than the whole run's estimate, more than what is left to write plus the margin.
    config = load_config_json(str(workdir / "config.json"))
    total, written = checkpoint_bytes(Experiment.from_config(config)), written_checkpoint_bytes(str(workdir))
    assert written > 0
    os.remove(ballast)
    leave = total - written + disk_margin(total) + 2**20
    assert leave < total + disk_margin(total)            # the former check (the whole run) would refuse
    fill(small_disk, leave=leave)
    resumed = run([TRAIN, f"--workdir={workdir}"], env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert results_of(workdir) == expected
    assert leftovers(workdir) == []


def test_free_space_check_counts_what_is_written_and_states_its_margin(tmp_path, monkeypatch):
    total, margin = 100 * 2**20, disk_margin(100 * 2**20)
    assert margin == int(0.05 * total) + 2 * 2**20
    free = 60 * 2**20
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10 * total, 0, free))
    check_writable(str(tmp_path / "a"), total, written_bytes=total - free + margin)      # exactly enough
    with pytest.raises(WorkdirNotWritable) as e:
        check_writable(str(tmp_path / "b"), total, written_bytes=total - free + margin - 1)
    message = str(e.value)
    assert "60.0 MiB free" in message and "still writes about 53.0 MiB" in message
    assert "47.0 MiB of 100.0 MiB already there" in message and "margin of 7.0 MiB" in message
    assert "\n" not in message


def test_results_and_atomic_writes_on_a_full_disk_are_one_line_and_leave_nothing(tmp_path, monkeypatch):
    """ENOSPC at the write call of results.jsonl (rewrite and append) and of an atomic file."""
    from ecg_jax import atomic, results

    row = results.make_row("fft", "emb", 0, None, "reference", "synthetic",
                           {k: 1.0 for k in results.METRIC_NAMES})
    path = tmp_path / "results.jsonl"
    results.append_rows(str(path), [row])
    before = path.read_bytes()

    class FullFile:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, text):
            self.f.write(text[:5])   # part of it reaches the disk, then the disk is full
            self.f.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.f, name)

    real_open = open

    def full_open(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        return FullFile(f) if ("w" in mode or "a" in mode) else f

    monkeypatch.setattr("builtins.open", full_open)
    for write in (lambda: results.replace_rows(str(path), [dict(row, seed=None, snr_db=4)]),
                  lambda: results.append_rows(str(path), [dict(row, snr_db=8)]),
                  lambda: atomic.write_text_atomic(str(tmp_path / "config.json"), "{}")):
        with pytest.raises(interrupts.DiskFullError) as e:
            write()
        assert str(e.value).startswith(f"no space left in {tmp_path} while writing") and "\n" not in str(e.value)
        monkeypatch.setattr("builtins.open", real_open)
        assert path.read_bytes() == before                      # the rows it had, no half line
        assert sorted(os.listdir(tmp_path)) == ["results.jsonl"]   # no temporary file
        monkeypatch.setattr("builtins.open", full_open)


def test_denoise_output_on_a_full_tmpfs_is_one_line_and_leaves_nothing(small_disk, tmp_path):
    import numpy as np

    t = np.arange(int(120 * 360)) / 360
    x = np.stack([np.sin(2 * np.pi * 1.3 * t), np.cos(2 * np.pi * 0.7 * t)], 1)
    source = tmp_path / "in.npy"
    np.save(source, x.astype(np.float32))
    fill(small_disk, leave=64 * 1024)                      # the CSV output needs ~2 MiB
    output = small_disk / "out.csv"
    proc = run([DENOISE, str(source), "--fs", "360", "--output", str(output)], env_for(tmp_path))
    assert_one_line_disk_full(proc, f"no space left in {small_disk} while writing out.csv")
    assert sorted(os.listdir(small_disk)) == ["ballast"]   # neither the output nor its temporary file
