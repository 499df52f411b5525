"""Faults injected through the real command line: busy, damaged, unwritable or moved workdirs.

Each test runs `scripts/train.py` / `scripts/evaluate.py` as a user would and
checks the one-line message, the exit status, and that no file was lost or
silently rewritten.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(REPO, "scripts", "train.py")
EVALUATE = os.path.join(REPO, "scripts", "evaluate.py")
TINY = ["--config", os.path.join(REPO, "configs", "unet.py:smoke"), "--config.data.window=64",
        "--config.data.n_windows=400", "--config.train.batch_size=32", "--config.seeds=1",
        "--config.train.epochs=3", "--config.train.checkpoint_every=1", "--config.train.keep_checkpoints=3"]
C_LOG_NOISE = "WARNING: All log messages before absl::InitializeLog()"


def env_for(tmp_path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "ECG_JAX_DATA"}
    env.update(ECG_JAX_CACHE=str(tmp_path / "cache"), JAX_PLATFORMS="cpu", **extra)
    return env


def run(args, env, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable] + args, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith(C_LOG_NOISE)]


def file_bytes(folder) -> dict[str, bytes]:
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = f.read()
    return out


def largest_file(folder) -> str:
    files = [os.path.join(r, n) for r, _, names in os.walk(folder) for n in names]
    return max(files, key=os.path.getsize)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished synthetic run (3 epochs, a checkpoint after each)."""
    root = tmp_path_factory.mktemp("faults")
    workdir = root / "w"
    proc = run([TRAIN] + TINY + ["--config.data.source=synthetic", f"--workdir={workdir}"], env_for(root))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root, workdir


def results_metrics(workdir) -> list[dict]:
    with open(os.path.join(workdir, "results.jsonl")) as f:
        return [json.loads(line)["metrics"] for line in f]


@pytest.mark.parametrize("damage", ["truncate the largest array file", "remove the metadata"])
def test_damaged_latest_checkpoint_falls_back_to_the_newest_intact_one(trained, tmp_path, damage):
    root, original = trained
    workdir = tmp_path / "w"
    shutil.copytree(original, workdir)
    latest = workdir / "checkpoints" / "chunk_00" / "3"
    if damage.startswith("truncate"):
        path = largest_file(latest / "state")
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 3)
    else:
        shutil.rmtree(latest / "meta")
    before = results_metrics(workdir)

    proc = run([TRAIN, f"--workdir={workdir}"], env_for(root))
    assert proc.returncode == 0, proc.stderr[-3000:]
    warnings = [line for line in proc.stderr.splitlines() if "is damaged" in line]
    assert len(warnings) == 1 and "chunk_00/3" in warnings[0], proc.stderr[-3000:]
    assert "resuming from the checkpoint after epoch 2" in proc.stderr
    assert results_metrics(workdir) == before            # the same numbers as the undamaged run
    moved = os.listdir(workdir / "checkpoints" / "damaged")
    assert len(moved) == 1 and moved[0].startswith("chunk_00_epoch_3_")   # kept, not deleted


def test_two_unreadable_checkpoints_in_a_row_stop_instead_of_retraining(trained, tmp_path):
    """Systematic failure (e.g. another library version) is not damage: nothing is retrained or moved
    beyond the first step."""
    root, original = trained
    workdir = tmp_path / "w"
    shutil.copytree(original, workdir)
    for epoch in ("3", "2"):
        shutil.rmtree(workdir / "checkpoints" / "chunk_00" / epoch / "meta")
    proc = run([TRAIN, f"--workdir={workdir}"], env_for(root))
    assert proc.returncode == 2
    assert "two checkpoints in a row cannot be read" in error_lines(proc.stderr)[-1], proc.stderr[-2000:]
    assert (workdir / "checkpoints" / "chunk_00" / "2").exists()
    assert (workdir / "checkpoints" / "chunk_00" / "1").exists()


def test_evaluate_of_a_damaged_latest_checkpoint_uses_the_intact_one_and_changes_nothing_else(trained, tmp_path):
    root, original = trained
    workdir = tmp_path / "w"
    shutil.copytree(original, workdir)
    path = largest_file(workdir / "checkpoints" / "chunk_00" / "3" / "state")
    with open(path, "r+b") as f:
        f.truncate(10)
    proc = run([EVALUATE, f"--workdir={workdir}"], env_for(root))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "chunk_00/3 is damaged" in proc.stderr
    assert os.path.exists(workdir / "checkpoints" / "chunk_00" / "3")   # evaluation moves nothing
    asked = run([EVALUATE, f"--workdir={workdir}", "--epoch=3"], env_for(root))
    assert asked.returncode == 2 and len(error_lines(asked.stderr)) == 1, asked.stderr
    assert "chunk_00/3 is damaged" in asked.stderr


ORPHANED_READS = """
import asyncio, gc, sys
import orbax.checkpoint as ocp
from ecg_jax.quiet_logs import quiet_orbax
from ecg_jax.train import checkpoints

quiet_orbax()   # as every ecg-jax entry point does (cli.run_main)

def orphaned_read(text):
    # What tensorstore leaves behind when a read finishes after orbax gave up on its restore:
    # a future holding an exception that was never raised in Python, that nobody awaits.
    loop = asyncio.new_event_loop()
    future = loop.create_future()
    future.set_exception(ValueError(text))
    del future
    gc.collect()
    loop.close()

mgr = checkpoints.manager(sys.argv[1], read_only=True)
orphaned_read("BEFORE any failed restore")   # not ours to hide: asyncio reports it
try:
    checkpoints._restore_item(mgr, 3, "state", ocp.StandardCheckpointHandler(), ocp.args.StandardRestore())
except Exception:
    print("restore failed", flush=True)
orphaned_read("AFTER the failed restore")    # a read the failed restore abandoned: dropped
"""


def test_reads_abandoned_by_a_failed_restore_print_nothing_later(trained, tmp_path):
    """Under load, reads of a damaged step can end after the one-line error: they stay silent,
    while the same kind of report from before any failed restore is still shown."""
    root, original = trained
    workdir = tmp_path / "w"
    shutil.copytree(original, workdir)
    with open(largest_file(workdir / "checkpoints" / "chunk_00" / "3" / "state"), "r+b") as f:
        f.truncate(10)
    proc = run(["-c", ORPHANED_READS, str(workdir / "checkpoints" / "chunk_00")], dict(env_for(root), PYTHONPATH=REPO))
    assert proc.returncode == 0 and "restore failed" in proc.stdout, proc.stderr[-3000:]
    assert "BEFORE any failed restore" in proc.stderr
    assert "AFTER" not in proc.stderr, proc.stderr[-3000:]


def test_a_second_run_on_a_busy_workdir_is_refused_and_a_killed_runs_lock_is_taken_over(tmp_path):
    workdir = tmp_path / "w"
    env = env_for(tmp_path)
    args = [TRAIN] + TINY + ["--config.data.source=synthetic", "--config.train.epochs=200", f"--workdir={workdir}"]
    first = subprocess.Popen([sys.executable] + args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and first.poll() is None and not (workdir / "metrics.jsonl").exists():
            time.sleep(0.2)
        assert first.poll() is None, first.stderr.read()[-3000:]
        metrics_before = (workdir / "metrics.jsonl").read_bytes()
        second = run([TRAIN, f"--workdir={workdir}"], env)
        assert second.returncode == 2
        lines = error_lines(second.stderr)
        assert len(lines) == 1 and f"in use by process {first.pid}" in lines[0], second.stderr
        # The second run wrote nothing: metrics.jsonl only grew by the first run's own epochs.
        assert (workdir / "metrics.jsonl").read_bytes().startswith(metrics_before)
    finally:
        first.kill()   # SIGKILL: its lock dies with it
        first.wait()
    # The killed run's lock is stale: the next run takes it over and finishes (as many epochs as the
    # killed one reached: it scores its newest checkpoint; fewer would be refused, issue 30).
    from ecg_jax.train.checkpoints import newest_epoch_on_disk
    reached = newest_epoch_on_disk(str(workdir)) or 1
    third = run([TRAIN] + TINY + ["--config.data.source=synthetic", f"--config.train.epochs={reached}",
                                  f"--workdir={workdir}"], env)
    assert third.returncode == 0, third.stderr[-3000:]
    assert (workdir / "results.jsonl").exists()


def test_an_unwritable_workdir_is_refused_before_any_work(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    proc = run([TRAIN] + TINY + ["--config.data.source=synthetic", f"--workdir={blocker / 'w'}"], env_for(tmp_path))
    assert proc.returncode == 2
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: cannot write to"), proc.stderr
    assert not (tmp_path / "cache").exists()     # stopped before preparing any data


def test_evaluate_elsewhere_without_the_data_never_scores_synthetic_data(tmp_path, shared_data_dir):
    """A PhysioNet workdir evaluated where its data folder is missing stops with one line; with
    --data_dir it scores on the real data again; data_card.json is never rewritten."""
    data = tmp_path / "data"
    data.mkdir()
    for db in ("mitdb", "nstdb"):
        os.symlink(shared_data_dir / db, data / db)
    workdir = tmp_path / "w"
    env = env_for(tmp_path)
    trained = run([TRAIN] + TINY + ["--config.train.epochs=1", f"--config.data.data_dir={data}",
                                    f"--workdir={workdir}"], env)
    assert trained.returncode == 0, trained.stderr[-3000:]
    config = json.loads((workdir / "config.json").read_text())
    assert config["data"]["source"] == "physionet" and config["data"]["data_dir"] == str(data)
    card = (workdir / "data_card.json").read_bytes()
    results = (workdir / "results.jsonl").read_bytes()

    shutil.rmtree(data)          # the data moved away; evaluate from another folder, no $ECG_JAX_DATA
    proc = run([EVALUATE, f"--workdir={workdir}"], env, cwd=str(tmp_path))
    assert proc.returncode == 2
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and str(data) in lines[0] and "--data_dir" in lines[0], proc.stderr
    resumed = run([TRAIN, f"--workdir={workdir}"], env, cwd=str(tmp_path))   # nor does a resume
    assert resumed.returncode == 2 and str(data) in resumed.stderr
    assert (workdir / "data_card.json").read_bytes() == card
    assert (workdir / "results.jsonl").read_bytes() == results

    moved = run([EVALUATE, f"--workdir={workdir}", f"--data_dir={shared_data_dir}"], env, cwd=str(tmp_path))
    assert moved.returncode == 0, moved.stderr[-3000:]
    with open(workdir / "results.jsonl") as f:
        rows = [json.loads(line) for line in f]
    assert {r["source"] for r in rows} == {"physionet"} and len(rows) == 1   # replaced, not duplicated
    assert (workdir / "data_card.json").read_bytes() == card


def test_evaluate_at_an_older_epoch_leaves_the_final_outputs_alone(trained, tmp_path):
    root, original = trained
    workdir = tmp_path / "w"
    shutil.copytree(original, workdir)
    examples = (workdir / "examples.npz").read_bytes()
    proc = run([EVALUATE, f"--workdir={workdir}", "--epoch=2"], env_for(root))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (workdir / "examples.npz").read_bytes() == examples
    with open(workdir / "results.jsonl") as f:
        rows = [json.loads(line) for line in f]
    assert sorted(r["epochs"] for r in rows) == [2, 3]      # the final row is still there
    again = run([EVALUATE, f"--workdir={workdir}", "--epoch=2"], env_for(root))
    assert again.returncode == 0
    with open(workdir / "results.jsonl") as f:
        assert sorted(json.loads(line)["epochs"] for line in f) == [2, 3]   # replaced, not duplicated
