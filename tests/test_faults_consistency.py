"""Issue 30 (reliability, third round): a workdir's files always agree with each other, through reruns.

6  the baselines stage holds the workdir lock as training does, and writes a row of one key once
7  two damaged checkpoints in a row stop every rerun (nothing moved) until --set_aside_damaged_checkpoints
8  examples.npz and the tables come from the same epoch (evaluate past a damaged newest checkpoint)
9  a resume with fewer epochs than the checkpoints hold is refused: config.json never disagrees with them
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil

import numpy as np
import pytest
from test_faults_lines import ecg_jax
from test_faults_workdir import EVALUATE, TINY, TRAIN, env_for, error_lines, results_metrics, run, trained  # noqa: F401

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def copy_of(trained, tmp_path):  # noqa: F811 -- the fixture's value
    root, original = trained
    workdir = tmp_path / "w"
    shutil.copytree(original, workdir)
    return root, workdir


def rows_of(workdir) -> list[dict]:
    with open(os.path.join(workdir, "results.jsonl")) as f:
        return [json.loads(line) for line in f]


# ------------------------------------------------------------------ 7

def test_two_damaged_checkpoints_stop_every_rerun_until_the_flag_sets_them_aside(trained, tmp_path):  # noqa: F811
    root, workdir = copy_of(trained, tmp_path)
    before = results_metrics(workdir)
    for epoch in ("3", "2"):
        shutil.rmtree(workdir / "checkpoints" / "chunk_00" / epoch / "meta")
    for attempt in range(2):   # the second rerun used to retrain from scratch without a word
        proc = run([TRAIN, f"--workdir={workdir}"], env_for(root))
        assert proc.returncode == 2, (attempt, proc.stderr[-3000:])
        lines = error_lines(proc.stderr)
        assert "two checkpoints in a row cannot be read" in lines[-1], proc.stderr[-3000:]
        assert "--set_aside_damaged_checkpoints" in lines[-1]
        assert not any("WARNING" in line for line in lines), proc.stderr[-3000:]
        assert sorted(os.listdir(workdir / "checkpoints" / "chunk_00")) == ["1", "2", "3"]   # nothing moved
        assert not (workdir / "checkpoints" / "damaged").exists()
        assert results_metrics(workdir) == before

    proc = run([TRAIN, f"--workdir={workdir}", "--set_aside_damaged_checkpoints"], env_for(root))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resuming from the checkpoint after epoch 1" in proc.stderr
    assert sorted(n.split("_epoch_")[1].split("_")[0] for n in os.listdir(workdir / "checkpoints" / "damaged")) \
        == ["2", "3"]
    assert results_metrics(workdir) == before            # retrained epochs 2 and 3: the same numbers


def test_a_damaged_newest_checkpoint_after_one_set_aside_before_also_stops(trained, tmp_path):  # noqa: F811
    """A workdir where an earlier run set epoch 3 aside and never got past it: epoch 2 damaged now is the
    second in a row, not a fresh single damage."""
    root, workdir = copy_of(trained, tmp_path)
    (workdir / "checkpoints" / "damaged").mkdir()
    os.replace(workdir / "checkpoints" / "chunk_00" / "3", workdir / "checkpoints" / "damaged" / "chunk_00_epoch_3_1")
    shutil.rmtree(workdir / "checkpoints" / "chunk_00" / "2" / "meta")
    proc = run([TRAIN, f"--workdir={workdir}"], env_for(root))
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = error_lines(proc.stderr)[-1]
    assert "two checkpoints in a row" in line and "epoch 3 was set aside before" in line, line
    assert sorted(os.listdir(workdir / "checkpoints" / "chunk_00")) == ["1", "2"]


# ------------------------------------------------------------------ 8

def test_evaluate_past_a_damaged_newest_checkpoint_keeps_examples_and_tables_on_one_epoch(trained, tmp_path):  # noqa: F811
    root, workdir = copy_of(trained, tmp_path)
    with np.load(workdir / "examples.npz") as z:
        assert int(z["epochs"]) == 3                      # training records the epoch of its examples
    examples = (workdir / "examples.npz").read_bytes()
    state = workdir / "checkpoints" / "chunk_00" / "3" / "state"
    largest = max((os.path.join(r, n) for r, _, ns in os.walk(state) for n in ns), key=os.path.getsize)
    with open(largest, "r+b") as f:
        f.truncate(10)
    proc = run([EVALUATE, f"--workdir={workdir}"], env_for(root))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "examples.npz left as it was" in proc.stderr, proc.stderr[-3000:]
    assert (workdir / "examples.npz").read_bytes() == examples      # not rewritten from epoch 2
    assert max(r["epochs"] for r in rows_of(workdir)) == 3           # what the tables show

    out = tmp_path / "tables"
    tables = ecg_jax("tables", "--results", workdir, "--out", out, env=env_for(root))
    assert tables.returncode == 0, tables.stderr[-3000:]
    assert "| 3 |" in (out / "tables.md").read_text() or "3" in (out / "runs.csv").read_text()


def test_evaluate_of_intact_checkpoints_records_the_epoch_of_the_examples(trained, tmp_path):  # noqa: F811
    root, workdir = copy_of(trained, tmp_path)
    (workdir / "examples.npz").unlink()
    proc = run([EVALUATE, f"--workdir={workdir}"], env_for(root))
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(workdir / "examples.npz") as z:
        assert int(z["epochs"]) == 3


# ------------------------------------------------------------------ 9

def test_a_resume_with_fewer_epochs_than_the_checkpoints_is_refused(trained, tmp_path):  # noqa: F811
    root, workdir = copy_of(trained, tmp_path)
    saved = {n: (workdir / n).read_bytes() for n in ("config.json", "results.jsonl", "examples.npz")}
    proc = run([TRAIN, *TINY, "--config.data.source=synthetic", "--config.train.epochs=2", f"--workdir={workdir}"],
               env_for(root))
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = error_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr[-3000:]
    assert "holds checkpoints after epoch 3" in lines[0] and "train.epochs=2" in lines[0]
    assert "--config.train.epochs=3" in lines[0] and "--epoch 2" in lines[0]
    for name, data in saved.items():
        assert (workdir / name).read_bytes() == data, name   # config.json still says 3, as the checkpoints
    assert json.loads(saved["config.json"])["train"]["epochs"] == 3
    more = run([TRAIN, *TINY, "--config.data.source=synthetic", "--config.train.epochs=3", f"--workdir={workdir}"],
               env_for(root))
    assert more.returncode == 0, more.stderr[-3000:]


# ------------------------------------------------------------------ 6

def _paper_smoke():
    spec = importlib.util.spec_from_file_location("_faults_paper", os.path.join(REPO, "configs", "paper.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    c = module.get_config("smoke")
    c.noise_types, c.snr_levels = ("emb",), (-4, 4)
    c.data.n_windows, c.data.source = 256, "synthetic"
    return c


def test_the_baselines_stage_holds_the_workdir_lock_and_writes_each_row_once(tmp_path, monkeypatch):
    from ecg_jax import reproduce
    from ecg_jax.results import read_rows, row_key
    from ecg_jax.workdir import WorkdirBusy, WorkdirLock

    monkeypatch.setenv("ECG_JAX_CACHE", str(tmp_path / "cache"))
    paper = reproduce.resolve_config(_paper_smoke())
    workdir = str(tmp_path / "baselines")
    os.makedirs(workdir)
    with WorkdirLock(workdir):   # another reproduce in this stage
        with pytest.raises(WorkdirBusy, match="is in use by process"):
            reproduce.run_baselines_stage(paper, workdir, "synthetic")
    assert not os.path.exists(os.path.join(workdir, "results.jsonl"))

    rows = reproduce.run_baselines_stage(paper, workdir, "synthetic")
    expected = len(reproduce.expected_baseline_keys(paper, "synthetic"))
    assert len(rows) == expected == len(read_rows(workdir))
    # The writer itself: the same rows written again (a second run that got past the checks) stay one each.
    reproduce.replace_rows(os.path.join(workdir, "results.jsonl"), rows)
    written = read_rows(workdir)
    assert len(written) == expected and len({row_key(r) for r in written}) == expected


def test_the_baselines_command_run_twice_keeps_one_row_per_key(tmp_path):
    from ecg_jax.results import read_rows, row_key

    workdir = tmp_path / "b"
    args = ["baselines", "--workdir", workdir, "--config", "default:smoke", "--config.data.source=synthetic",
            "--config.noise_types=emb", "--config.snr_levels=0", "--config.data.n_windows=256",
            "--config.baselines.methods=fft,dwt"]
    for _ in range(2):
        proc = ecg_jax(*args, env=env_for(tmp_path))
        assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_rows(str(workdir))
    assert len(rows) == 2 and len({row_key(r) for r in rows}) == 2, [r["method"] for r in rows]
