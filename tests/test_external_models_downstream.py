"""Your own network past training (issue 28): options on the command line, the final config, kill -9 and
resume, export and denoise, the tables beside the zoo with --compare published, reproduce's extra networks,
summary. Every network is written into pytest's tmp_path, outside the repository; runs are tiny (window 64,
synthetic data) and go through the real command line where the issue names a command.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import ml_collections
import numpy as np
import pytest
from test_external_models import BROKEN, HEADER, TINY_NET, error_line, write

from ecg_jax.errors import ConfigError
from ecg_jax.network_flags import add_option_fields, adopt_model_options, command_line_options

SMALL = ["--config.data.source=synthetic", "--config.data.window=64", "--config.data.n_windows=160",
         "--config.train.batch_size=32", "--config.data.synthetic_records=2", "--config.data.synthetic_samples=65000",
         "--config.seeds=1"]
FINAL_RUN = ["--config", "final:smoke", "--config.train.epochs=2", "--config.noise_types=emb",
             "--config.snr_levels=-4,4"] + SMALL


def cli(args: list[str], tmp_path, cwd=None, prefix=("-m", "ecg_jax")) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ECG_JAX_DATA"}
    env.update(ECG_JAX_CACHE=str(tmp_path / "cache"), JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, *prefix, *args], env=env, capture_output=True, text=True,
                          timeout=600, cwd=str(cwd or tmp_path))


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def rows_of(workdir) -> list[dict]:
    return [json.loads(line) for line in (workdir / "results.jsonl").read_text().splitlines()]


# ---------------------------------------------------------------- options on the command line

def test_option_fields_are_added_for_the_command_lines_options_only():
    argv = ["prog", "--config=x.py", "--config.model_kwargs.features=3", "--noconfig.model_kwargs.flag",
            "--config.model_kwargs.features=4", "--config.seeds=2", "--other.model_kwargs.x=1"]
    assert command_line_options(argv) == ["features", "flag"]
    config = ml_collections.ConfigDict({"model": "m", "model_kwargs": {"kernels": (3,)}, "seeds": 1})
    config.lock()
    add_option_fields(config, ["features", "kernels"])
    assert config.model_kwargs.get_type("features") is object and config.model_kwargs.kernels == (3,)
    with pytest.raises(AttributeError):   # still locked: a typo elsewhere is still refused
        config.sedes = 3


def test_a_config_files_options_that_another_network_lacks_are_left_out_with_a_note(tmp_path):
    spec = f"{write(tmp_path, 'my_net.py', TINY_NET)}:MyNet"
    config = ml_collections.ConfigDict({"model": spec, "model_kwargs": {"kernels": (17, 7), "features": 8}})
    adopted, note = adopt_model_options(config, {"model": spec})
    assert adopted.model_kwargs.to_dict() == {"features": 8}
    assert note.startswith("note: left out the config file's model_kwargs kernels=(17, 7)") and "MyNet" in note
    # an option given on the command line is kept, to be refused by the network's own check
    kept, _ = adopt_model_options(config, {"model": spec, "model_kwargs.kernels": (17, 7)})
    assert kept.model_kwargs.kernels == (17, 7)
    assert adopt_model_options(config, {"seeds": 2}) == (config, None)   # no --config.model: untouched


def test_final_config_trains_an_external_network_with_a_new_option_and_refuses_an_unknown_one(tmp_path):
    write(tmp_path, "my_net.py", TINY_NET)
    spec = f"{tmp_path / 'my_net.py'}:MyNet"
    trained = ok(cli(["train", *FINAL_RUN, f"--config.model={spec}", "--config.model_kwargs.features=3",
                      f"--workdir={tmp_path / 'W'}"], tmp_path))
    assert "left out the config file's model_kwargs kernels=(17, 17, 7, 7)" in trained.stderr
    # Conv 2->3 (k5): 33, BatchNorm: 6, Conv 3->2 (k5): 32
    assert "71 parameters each" in trained.stderr
    saved = json.loads((tmp_path / "W" / "config.json").read_text())
    assert saved["model_kwargs"] == {"features": 3} and saved["data"]["revision"] == "final"
    assert {r["network_label"] for r in rows_of(tmp_path / "W")} == {"MyNet"}

    line = error_line(cli(["train", *FINAL_RUN, f"--config.model={spec}", "--config.model_kwargs.depth=2",
                           f"--workdir={tmp_path / 'W2'}"], tmp_path))
    assert "has no option 'depth' (valid options: features)" in line
    assert not (tmp_path / "W2").exists()


# ---------------------------------------------------------------- kill -9, then resume

KILLED_BEFORE_SAVING_EPOCH_3 = """
import os, runpy, signal, sys
from ecg_jax.train import checkpoints

real_save = checkpoints.save

def save(mgr, epoch, *args, **kwargs):
    if str(mgr.directory).endswith("chunk_00") and epoch == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return real_save(mgr, epoch, *args, **kwargs)

checkpoints.save = save
sys.argv = ["ecg-jax"] + sys.argv[1:]
runpy.run_module("ecg_jax", run_name="__main__")
"""


def test_an_external_network_killed_mid_run_resumes_to_the_uninterrupted_results(tmp_path):
    write(tmp_path, "my_net.py", TINY_NET)
    args = ["train", "--config", "unet:smoke", "--config.model=my_net.py:MyNet", "--config.train.epochs=5",
            *SMALL]
    killed = cli([*args, f"--workdir={tmp_path / 'W'}"], tmp_path, prefix=("-c", KILLED_BEFORE_SAVING_EPOCH_3))
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr[-3000:])
    assert not (tmp_path / "W" / "results.jsonl").exists()
    elsewhere = tmp_path / "elsewhere"    # the relative spec is found from the path the workdir recorded
    elsewhere.mkdir()
    resumed = ok(cli(["train", f"--workdir={tmp_path / 'W'}"], tmp_path, cwd=elsewhere))
    assert "resuming from the checkpoint after epoch 2" in resumed.stderr
    ok(cli([*args, f"--workdir={tmp_path / 'full'}"], tmp_path))
    a, b = rows_of(tmp_path / "W"), rows_of(tmp_path / "full")
    assert [r["metrics"] for r in a] == [r["metrics"] for r in b] and a[0]["epochs"] == 5
    assert a[0]["network_label"] == "MyNet"
    from ecg_jax.denoise.runs import restore_members

    x, y = restore_members(str(tmp_path / "W")), restore_members(str(tmp_path / "full"))
    for u, v in zip(*(jax_leaves(r.variables) for r in (x, y)), strict=True):
        np.testing.assert_array_equal(u, v)


def jax_leaves(tree):
    import jax

    return [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(tree)]


# ---------------------------------------------------------------- export and denoise

def test_export_records_how_to_rebuild_and_denoise_refuses_a_changed_source(tmp_path):
    path = write(tmp_path, "my_net.py", TINY_NET)
    ok(cli(["train", "--config", "unet:smoke", "--config.model=my_net.py:MyNet", "--config.train.epochs=1",
            *SMALL, f"--workdir={tmp_path / 'W'}"], tmp_path))
    ok(cli(["export", f"--workdir={tmp_path / 'W'}", f"--output={tmp_path / 'my.npz'}", "--noscore"], tmp_path))
    with np.load(tmp_path / "my.npz") as z:
        meta = json.loads(str(z["meta"]))
    assert meta["network"] == "my_net.py:MyNet" and meta["options"] == {} and meta["network_label"] == "MyNet"
    source = meta["model_source"]
    assert (source["kind"], source["class"], source["path"]) == ("file", "MyNet", str(path))
    assert source["sha256"] == json.loads((tmp_path / "W" / "model_source.json").read_text())["sha256"]
    assert json.loads((tmp_path / "my.json").read_text())["model_source"] == source

    t = np.arange(1800) / 360.0
    np.save(tmp_path / "rec.npy", 0.5 * np.stack([np.sin(2 * np.pi * t), np.cos(2 * np.pi * t)], axis=1))
    elsewhere = tmp_path / "elsewhere"   # the relative spec is rebuilt from the recorded file
    elsewhere.mkdir()
    denoise = ["denoise", str(tmp_path / "rec.npy"), "--fs=360", f"--weights={tmp_path / 'my.npz'}"]
    ok(cli([*denoise, f"--output={tmp_path / 'a.npy'}"], tmp_path, cwd=elsewhere))
    assert np.load(tmp_path / "a.npy").shape == (1800, 2)

    path.write_text(TINY_NET + "\n# edited after the export\n")
    line = error_line(cli([*denoise, f"--output={tmp_path / 'b.npy'}"], tmp_path, cwd=elsewhere))
    assert "changed since" in line and str(tmp_path / "my.npz") in line and "--allow_changed_model_source" in line
    assert not (tmp_path / "b.npy").exists()
    ok(cli([*denoise, f"--output={tmp_path / 'b.npy'}", "--allow_changed_model_source"], tmp_path, cwd=elsewhere))
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))


# ---------------------------------------------------------------- the acceptance, tables beside the zoo

def test_acceptance_final_training_beside_a_zoo_run_with_published_numbers(tmp_path, published_json):
    """`train --config final --config.model=/abs/my_net.py:MyNet` (smoke-sized), a zoo run of the same
    config, then `tables --results W,Z --compare published`: MyNet is a row of its own, named, with no
    published row under it and the note saying why; a wrong-shape network is refused in one line first."""
    spec = f"{write(tmp_path, 'my_net.py', TINY_NET)}:MyNet"
    ok(cli(["train", *FINAL_RUN, f"--config.model={spec}", f"--workdir={tmp_path / 'W'}"], tmp_path))
    ok(cli(["evaluate", f"--workdir={tmp_path / 'W'}"], tmp_path))
    ok(cli(["train", *FINAL_RUN, f"--workdir={tmp_path / 'Z'}"], tmp_path))
    out = ok(cli(["tables", f"--results={tmp_path / 'W'},{tmp_path / 'Z'}", f"--out={tmp_path / 'T'}",
                  "--compare=published", f"--published={published_json}"], tmp_path)).stdout
    mine = [line for line in out.splitlines() if line.startswith("| MyNet |")]
    zoo = [line for line in out.splitlines() if line.startswith("| U-Net |")]
    assert mine and zoo
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("| MyNet |"):
            assert not lines[i + 1].startswith("| ↳ published")
    assert "MyNet: your own network, not in the reference's README: no published numbers" in out
    assert "MyNet" in (tmp_path / "T" / "runs.csv").read_text()

    bad = write(tmp_path, "bad.py", HEADER + textwrap.dedent(BROKEN["output shape"][0]))
    line = error_line(cli(["train", *FINAL_RUN, f"--config.model={bad}:MyNet", f"--workdir={tmp_path / 'B'}"],
                          tmp_path))
    assert "breaks the network contract" in line and "(2, 64, 1)" in line and not (tmp_path / "B").exists()


def test_published_comparison_notes_an_own_network_in_the_protocol_tables(published_json):
    from ecg_jax import report
    from ecg_jax.metrics import METRIC_NAMES
    from ecg_jax.results import make_row

    def row(method, seed):
        return {**make_row(method=method, noise_type="emb", snr_db=0, seed=seed, split="reference",
                           source="physionet", metrics={k: 1.0 for k in METRIC_NAMES}, revision="paper", epochs=3),
                **({"network_label": "MyNet"} if method == "mynet" else {})}

    tables = report.build_tables([row("unet", 0), row("mynet", 0)], published=report.load_published(
        str(published_json)))
    main = tables[0]
    by_label = {r.label: r for r in main.rows}
    assert by_label["U-Net"].comparisons and not by_label["MyNet"].comparisons
    assert "MyNet: your own network" in main.comparison_note


# ---------------------------------------------------------------- reproduce, figures, summary

def test_reproduce_adds_extra_networks_names_them_and_refuses_a_broken_one_first(tmp_path, monkeypatch):
    from ecg_jax import reproduce
    from ecg_jax.configs import paper
    from ecg_jax.report import figures

    monkeypatch.setenv("ECG_JAX_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ECG_JAX_DATA", raising=False)
    spec = f"{write(tmp_path, 'my_net.py', TINY_NET)}:MyNet"
    c = paper.get_config("smoke")
    c.networks = ()
    c.noise_types, c.snr_levels, c.seeds = ("emb",), (-4, 4), 1
    c.train.epochs = 1
    c.data.source, c.data.window, c.data.n_windows = "synthetic", 64, 160
    c.data.synthetic_records, c.data.synthetic_samples = 2, 65000
    c.train.batch_size = 32

    bad = f"{write(tmp_path, 'bad.py', HEADER + textwrap.dedent(BROKEN['output shape'][0]))}:MyNet"
    with pytest.raises(ConfigError, match="breaks the network contract"):
        reproduce.reproduce(c, str(tmp_path / "bad_run"), extra_models=[bad])
    assert not (tmp_path / "bad_run").exists()
    with pytest.raises(ConfigError, match="would be experiment 'mynet'"):
        reproduce.external_networks(reproduce.resolve_config(c), [spec, spec])

    paths = reproduce.reproduce(c, str(tmp_path / "R"), extra_models=[spec])
    rows = rows_of(tmp_path / "R" / "mynet")
    assert {(r["method"], r["network_label"]) for r in rows} == {("mynet", "MyNet")}
    assert "| MyNet |" in open(paths["markdown"]).read()
    assert "example" in paths   # MyNet's output is the main example figure's network line
    assert figures._label("mynet", rows) == "MyNet"
    # after its file changed, a rerun refuses its finished rows rather than taking them as the new file's
    path = tmp_path / "my_net.py"
    path.write_text(TINY_NET + "\n# edited\n")
    with pytest.raises(ConfigError, match="changed since"):
        reproduce.reproduce(c, str(tmp_path / "R"), extra_models=[spec])


def test_summary_reports_an_external_network(tmp_path):
    from ecg_jax.models.summary import summarise_models

    text = summarise_models([f"{write(tmp_path, 'my_net.py', TINY_NET)}:MyNet", "unet"], batch=2, length=64,
                            repeats=1)
    line = next(line for line in text.splitlines() if line.startswith("MyNet"))
    assert " 94 " in line and "2x64x2" in line
