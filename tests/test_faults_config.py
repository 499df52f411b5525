"""Bad configs injected through the real command line: refused in one line, before anything is written.

Each test runs `scripts/train.py` (or evaluate.py, reproduce.py) as a user
would, with one mistake, and checks that the process exits 2 with exactly one
line on stderr, "error: ...", naming the field, and that the workdir was not
even created: no config.json, no data card, no checkpoint.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "configs"))
import common  # noqa: E402

TRAIN = os.path.join(REPO, "scripts", "train.py")
EVALUATE = os.path.join(REPO, "scripts", "evaluate.py")
REPRODUCE = os.path.join(REPO, "scripts", "reproduce.py")
SMOKE = ["--config", os.path.join(REPO, "configs", "unet.py:smoke"), "--config.data.source=synthetic"]
C_LOG_NOISE = "WARNING: All log messages before absl::InitializeLog()"   # from C++, not ours


def run(args: list[str], tmp_path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ECG_JAX_DATA"}
    env.update(ECG_JAX_CACHE=str(tmp_path / "cache"), JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable] + args, env=env, capture_output=True, text=True, timeout=300,
                          cwd=str(tmp_path))


def the_error_line(proc: subprocess.CompletedProcess) -> str:
    """The one line of stderr of a refused run (exit 2), "error: ..."."""
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith(C_LOG_NOISE)]
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-3000:]
    return lines[0]


def assert_nothing_written(workdir) -> None:
    assert not workdir.exists() or not any(workdir.iterdir()), sorted(p.name for p in workdir.iterdir())


@pytest.mark.parametrize("overrides,expected", [
    (["--config.train.batch_size=0"], ["train.batch_size", "got 0", ">= 1"]),
    (["--config.train.epochs=0"], ["train.epochs", "got 0", ">= 1"]),
    (["--config.trian.epochs=3"], ["trian.epochs", "--config.trian.epochs=3", "did you mean --config.train.epochs?"]),
    (["--config.data.n_windows=100", "--config.train.batch_size=512"],
     ["train.batch_size=512", "80 training windows", "data.n_windows=100", "<= 80"]),
    (["--config.train.checkpoint_every=0"], ["train.checkpoint_every", "got 0", ">= 1"]),
    (["--config.train.lr_decay_factor=1.5"], ["train.lr_decay_factor", "got 1.5", "(0, 1]"]),
    (["--config.data.train_fraction=1.0"], ["data.train_fraction", "got 1.0", "(0, 1)"]),
    (["--config.train.epoch=3"], ["train.epoch", "did you mean --config.train.epochs?"]),
    (["--config.seed=2"], ["seed", "did you mean --config.seeds?"]),
    (["--config.train.epochs=abc"], ["--config.train.epochs=abc", "'abc'"]),
], ids=["batch_size=0", "epochs=0", "misspelled section", "batch larger than data", "checkpoint_every=0",
        "lr_decay_factor", "train_fraction", "misspelled field", "misspelled top-level field", "not a number"])
def test_train_refuses_a_bad_config_in_one_line_and_writes_nothing(tmp_path, overrides, expected):
    workdir = tmp_path / "w"
    line = the_error_line(run([TRAIN] + SMOKE + overrides + [f"--workdir={workdir}"], tmp_path))
    for fragment in expected:
        assert fragment in line, line
    assert_nothing_written(workdir)


def test_a_missing_config_file_is_one_line(tmp_path):
    workdir = tmp_path / "w"
    line = the_error_line(run([TRAIN, "--config", "configs/no_such_network.py", f"--workdir={workdir}"], tmp_path))
    assert "configs/no_such_network.py" in line and "No such file" in line, line
    assert_nothing_written(workdir)


def test_a_workdirs_config_json_with_an_unknown_or_bad_field_is_refused(tmp_path):
    """Resume (train.py --workdir W) and evaluate.py read W/config.json: checked as completely."""
    workdir = tmp_path / "w"
    workdir.mkdir()
    config = common.network_config("unet", "smoke").to_dict()
    config["train"]["epoch"] = config["train"].pop("epochs")
    (workdir / "config.json").write_text(json.dumps(config, default=list))
    line = the_error_line(run([TRAIN, f"--workdir={workdir}"], tmp_path))
    assert str(workdir / "config.json") in line and "train.epoch=3" in line and "did you mean train.epochs?" in line
    assert sorted(p.name for p in workdir.iterdir()) == ["config.json"]

    config["train"]["epochs"] = config["train"].pop("epoch")
    config["train"]["keep_checkpoints"] = 0
    (workdir / "config.json").write_text(json.dumps(config, default=list))
    line = the_error_line(run([EVALUATE, f"--workdir={workdir}"], tmp_path))
    assert "train.keep_checkpoints must be an integer >= 1, got 0" in line, line
    assert sorted(p.name for p in workdir.iterdir()) == ["config.json"]


def test_reproduce_refuses_a_misspelled_field_of_the_paper_config(tmp_path):
    workdir = tmp_path / "r"
    line = the_error_line(run([REPRODUCE, "--config", os.path.join(REPO, "configs", "paper.py:smoke"),
                               "--config.netwroks=unet", f"--workdir={workdir}"], tmp_path))
    assert "did you mean --config.networks?" in line, line
    assert_nothing_written(workdir)


@pytest.mark.parametrize("script,args,expected", [
    ("prepare_data.py", ["--config.data.revsion=final"], "did you mean --config.data.revision?"),
    ("run_baselines.py", ["--config.baselines.method=dwt"], "did you mean --config.baselines.methods?"),
    ("reproduce.py", ["--config.sedes=2"], "did you mean --config.seeds?"),
    ("prepare_data.py", ["--config", os.path.join(REPO, "configs", "final.py"), "--config.data.revsion=final"],
     "did you mean --config.data.revision?"),
], ids=["prepare_data default", "run_baselines default", "reproduce default", "prepare_data final"])
def test_a_misspelled_field_of_a_default_config_is_one_line(tmp_path, script, args, expected):
    """Scripts with a default config file: ml_collections applies the overrides while the flag is
    defined, before absl parses anything (a traceback before `cli.define_config_file`)."""
    workdir = tmp_path / "w"
    line = the_error_line(run([os.path.join(REPO, "scripts", script)] + args + [f"--workdir={workdir}"], tmp_path))
    assert expected in line and "unknown config field" in line, line
    assert_nothing_written(workdir)


def test_overrides_without_a_config_file_are_one_line(tmp_path):
    workdir = tmp_path / "w"
    line = the_error_line(run([TRAIN, "--config.seeds=2", f"--workdir={workdir}"], tmp_path))
    assert "--config.seeds=2" in line and "give --config FILE first" in line, line
    assert_nothing_written(workdir)
