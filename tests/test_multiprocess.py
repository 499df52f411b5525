"""Several processes against one, through the real command line.

`scripts/train.py` runs as 2 local processes x 2 fake CPU devices
(`jax.distributed` over loopback, gloo collectives) and as one process with 2
and with 4 devices, all on the U-Net smoke config (4 seeds, 640 windows, 2
epochs). Then `scripts/evaluate.py` scores the 2-process workdir in a single
process. XLA:CPU's float rounding depends on the size of a process's thread
pool; the scripts give every process of a mesh the same pool
(`cli.cpu_thread_pool_size`), so 2 processes x 2 devices equal 1 process x 4
bit for bit. A mesh of another size (1 x 2) agrees to float rounding.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

import numpy as np
import pytest

from ecg_jax import local_processes

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_ARGS = ["--config", os.path.join(REPO, "configs", "unet.py:smoke"), "--config.seeds=4",
              "--config.data.n_windows=640", "--config.train.epochs=2", "--config.data.source=synthetic"]
# A sweep's members (2 seeds x 2 learning rates, the validation split held out) over the same meshes.
SWEEP_ARGS = ["--config.seeds=2", "--config.sweep.train.learning_rate=1e-3,3e-4"]
TIMEOUT = 600


def run_script(script: str, args: list[str], processes: int, devices: int, env_extra: dict) -> list[str]:
    """Run `scripts/<script>` as `processes` processes of `devices` fake CPU devices; their stderr."""
    procs = local_processes.launch([sys.executable, os.path.join(REPO, "scripts", script)] + args, processes,
                                   devices, dict(os.environ, **env_extra))
    outcomes = local_processes.wait(procs, TIMEOUT)
    for rc, _, err in outcomes:
        assert rc == 0, f"{script} exited {rc}:\n{err[-4000:]}"
    return [err for _, _, err in outcomes]


def rows_of(workdir) -> list[dict]:
    with open(os.path.join(workdir, "results.jsonl")) as f:
        return [json.loads(line) for line in f]


def assert_rows_close(a: list[dict], b: list[dict], rtol: float) -> None:
    def keys(rows):
        return [(r["noise_type"], r["snr_db"], r["seed"]) for r in rows]

    assert keys(a) == keys(b)
    for x, y in zip(a, b, strict=True):
        for k in x["metrics"]:
            np.testing.assert_allclose(x["metrics"][k], y["metrics"][k], rtol=rtol, err_msg=k)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("multiprocess")
    env = {"ECG_JAX_CACHE": str(root / "cache")}
    out = {}
    for name, processes, devices in (("2x2", 2, 2), ("1x2", 1, 2), ("1x4", 1, 4), ("sweep-2x2", 2, 2),
                                     ("sweep-1x4", 1, 4)):
        workdir = root / name
        args = TRAIN_ARGS + (SWEEP_ARGS if name.startswith("sweep") else []) + [f"--workdir={workdir}"]
        out[name + "_stderr"] = run_script("train.py", args, processes, devices, env)
        out[name] = workdir
    out["env"] = env
    return out


def test_two_processes_write_one_set_of_files(runs):
    w = runs["2x2"]
    with open(w / "metrics.jsonl") as f:
        assert [json.loads(line)["epoch"] for line in f] == [1, 2]      # not one line per process
    assert len(rows_of(w)) == 4
    members = json.loads((w / "members.json").read_text())
    assert members["processes"] == 2 and len(members["devices"]) == 4
    assert members["memory"]["planned_by"] == "cpu: one member per device"
    # Both processes wrote their shards of one checkpoint.
    step = w / "checkpoints" / "chunk_00" / "2" / "state"
    assert (step / "ocdbt.process_0").exists() and (step / "ocdbt.process_1").exists()
    assert "4 device(s) in 2 process(es)" in runs["2x2_stderr"][0]
    assert runs["2x2_stderr"][1].count("epoch 2/2") == 0   # only process 0 reports


def final_state_leaves(workdir) -> list[np.ndarray]:
    """Every member's final parameters, statistics and optimizer state, restored in this process."""
    import jax

    from ecg_jax.evaluation import load_workdir_config, restore_chunk
    from ecg_jax.train import sharding
    from ecg_jax.train.experiment import Experiment, workdir_chunks

    experiment = Experiment.from_config(load_workdir_config(str(workdir)))
    per_chunk = []
    for ci, chunk in enumerate(workdir_chunks(str(workdir), experiment)):
        state = sharding.to_host(restore_chunk(experiment, str(workdir), ci, chunk)[1])
        per_chunk.append([x[:len(chunk)] for x in jax.tree_util.tree_leaves(state)])
    return [np.concatenate(parts) for parts in zip(*per_chunk, strict=True)]   # member-leading, whatever the chunks


def test_two_processes_equal_one_process_of_the_same_mesh(runs):
    """Issue 9's acceptance asks 1e-5; with the pinned thread pool they are equal bit for bit:
    metrics, and every array of every member's final state."""
    a, b = rows_of(runs["2x2"]), rows_of(runs["1x4"])
    assert [r["metrics"] for r in a] == [r["metrics"] for r in b]
    for x, y in zip(final_state_leaves(runs["2x2"]), final_state_leaves(runs["1x4"]), strict=True):
        np.testing.assert_array_equal(x, y)


def test_two_processes_equal_one_process_for_a_sweeps_members(runs):
    """Sweep points are members like seeds: 2 processes x 2 devices give 1 x 4's numbers bit for bit,
    test and validation metrics and every member's final state."""
    a, b = rows_of(runs["sweep-2x2"]), rows_of(runs["sweep-1x4"])
    assert len(a) == 4 and {r["sweep_point"] for r in a} == {"learning_rate=0.001", "learning_rate=0.0003"}
    assert [(r["sweep_point"], r["seed"], r["metrics"], r["validation_metrics"]) for r in a] == \
        [(r["sweep_point"], r["seed"], r["metrics"], r["validation_metrics"]) for r in b]
    for x, y in zip(final_state_leaves(runs["sweep-2x2"]), final_state_leaves(runs["sweep-1x4"]), strict=True):
        np.testing.assert_array_equal(x, y)


def test_a_smaller_mesh_agrees_to_float_rounding(runs):
    """1 x 2 runs with XLA's own pool of 2 threads, so its convolutions round differently; Adam turns
    the rounding of the near-zero gradient of the bias before BatchNorm into lr-sized steps, which
    moves the metrics by ~1e-5 relative after 2 epochs (measured 1.65e-5)."""
    assert_rows_close(rows_of(runs["2x2"]), rows_of(runs["1x2"]), rtol=1e-4)


@pytest.mark.parametrize("devices", [2, 1])
def test_evaluate_in_one_process_reproduces_the_two_process_run(runs, tmp_path, devices):
    workdir = tmp_path / "w"
    shutil.copytree(runs["2x2"], workdir)
    trained = rows_of(workdir)
    run_script("evaluate.py", [f"--workdir={workdir}"], 1, devices, runs["env"])
    evaluated = rows_of(workdir)        # the rows of the same runs and epoch are replaced
    # 2 (or 4) members per device instead of 1: the vmapped convolutions round differently,
    # in the evaluation only (no training step amplifies it).
    assert_rows_close(evaluated, trained, rtol=1e-5)
    assert [r["epochs"] for r in evaluated] == [2] * 4


def test_a_one_process_checkpoint_evaluates_in_two_processes(runs, tmp_path):
    """The reverse direction: chunks of 2 members saved by one process, restored over 4 devices
    in 2 processes (re-padded to 4 members)."""
    workdir = tmp_path / "w"
    shutil.copytree(runs["1x2"], workdir)
    trained = rows_of(workdir)
    stderr = run_script("evaluate.py", [f"--workdir={workdir}"], 2, 2, runs["env"])
    evaluated = rows_of(workdir)
    assert len(evaluated) == 4            # written once, by process 0, replacing the trained rows
    assert_rows_close(evaluated, trained, rtol=1e-5)
    assert "restored the checkpoint after epoch 2" in stderr[0]


def test_a_shard_only_one_process_reads_is_damaged_and_both_fall_back(runs, tmp_path):
    """Process 1's shard files of the last checkpoint are truncated: process 1 cannot read its part,
    process 0 can read its own. Both must give up that step together and restore the one before
    (orbax's own restore ends in a barrier that process 1 would never reach)."""
    workdir = tmp_path / "w"
    shutil.copytree(runs["2x2"], workdir)
    shards = sorted((workdir / "checkpoints" / "chunk_00" / "2" / "state" / "ocdbt.process_1" / "d").iterdir())
    assert shards
    for f in shards:
        with open(f, "r+b") as fh:
            fh.truncate(100)
    stderr = run_script("evaluate.py", [f"--workdir={workdir}"], 2, 2, runs["env"])
    assert f"{workdir / 'checkpoints' / 'chunk_00' / '2'} is damaged" in stderr[0]
    assert "restored the checkpoint after epoch 1" in stderr[0]
    rows = rows_of(workdir)
    assert [r["epochs"] for r in rows] == [2] * 4 + [1] * 4     # the epoch-2 rows stay, epoch-1 rows added


@pytest.mark.parametrize("cores, local, processes, expected", [
    (2, 4, 1, None),     # XLA already gives max(2, 4) = 4
    (2, 2, 2, 4),        # the same mesh split over 2 processes: 4, like 1 x 4
    (2, 1, 4, 4),
    (2, 1, 1, None),     # one device: XLA's default (2 cores)
    (2, 2, 1, None),
    (16, 2, 2, None),    # more cores than the mesh has devices: untouched
    (8, 4, 4, 16),
])
def test_cpu_thread_pool_size_is_the_same_for_every_split_of_a_mesh(cores, local, processes, expected):
    from ecg_jax.cli import cpu_thread_pool_size

    assert cpu_thread_pool_size(cores, local, processes) == expected
    pool = expected or max(cores, local)            # what XLA then uses
    assert pool == max(cores, local * processes)


def test_pin_cpu_thread_pool_sets_pjrt_nproc_unless_the_user_did(monkeypatch):
    from jax._src import xla_bridge

    from ecg_jax import cli

    monkeypatch.setattr(xla_bridge, "backends_are_initialized", lambda: False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    for name in cli.CPU_THREADS_ENV:
        monkeypatch.delenv(name, raising=False)
    cli.pin_cpu_thread_pool(2)
    assert os.environ["PJRT_NPROC"] == "4"
    monkeypatch.delenv("PJRT_NPROC")
    cli.pin_cpu_thread_pool(None)                    # one process of 2 devices on 2 cores: XLA's default
    assert "PJRT_NPROC" not in os.environ
    monkeypatch.setenv("NPROC", "3")                 # the user's choice wins
    cli.pin_cpu_thread_pool(2)
    assert "PJRT_NPROC" not in os.environ
