"""Several processes against one, through the real command line.

`scripts/train.py` runs as 2 local processes x 2 fake CPU devices
(`jax.distributed` over loopback, gloo collectives) and as one process with 2
and with 4 devices, all on the U-Net smoke config (4 seeds, 640 windows, 2
epochs). Then `scripts/evaluate.py` scores the 2-process workdir in a single
process. XLA:CPU's float rounding depends on how many devices a process
drives (BENCHMARKS.md, "layouts"), so the exact comparison is between runs
with the same devices per process; across device counts the results agree to
float rounding.
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
    assert [(r["noise_type"], r["snr_db"], r["seed"]) for r in a] == [(r["noise_type"], r["snr_db"], r["seed"]) for r in b]
    for x, y in zip(a, b):
        for k in x["metrics"]:
            np.testing.assert_allclose(x["metrics"][k], y["metrics"][k], rtol=rtol, err_msg=k)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("multiprocess")
    env = {"ECG_JAX_CACHE": str(root / "cache")}
    out = {}
    for name, processes, devices in (("2x2", 2, 2), ("1x2", 1, 2), ("1x4", 1, 4)):
        workdir = root / name
        out[name + "_stderr"] = run_script("train.py", TRAIN_ARGS + [f"--workdir={workdir}"], processes, devices, env)
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
    return [np.concatenate(parts) for parts in zip(*per_chunk)]   # member-leading, whatever the chunks


def test_two_processes_equal_one_process_with_the_same_devices_per_process(runs):
    a, b = rows_of(runs["2x2"]), rows_of(runs["1x2"])
    assert [r["metrics"] for r in a] == [r["metrics"] for r in b]
    for x, y in zip(final_state_leaves(runs["2x2"]), final_state_leaves(runs["1x2"])):
        np.testing.assert_array_equal(x, y)


def test_two_processes_agree_with_one_process_of_four_devices(runs):
    assert_rows_close(rows_of(runs["2x2"]), rows_of(runs["1x4"]), rtol=1e-4)


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
