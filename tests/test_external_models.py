"""Your own Flax network through the benchmark (ecg_jax/models/external.py): `--config.model=PATH.py:Class`,
`module:Class` or an `ecg_jax.models` entry point; the contract, one ConfigError line per broken rule;
the workdir's source record and its check on evaluation; display names in the tables.

Every network here is a few layers at window 64, written into pytest's tmp_path (outside the repository).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap

import pytest

from ecg_jax import models
from ecg_jax.errors import ConfigError
from ecg_jax.models import external

WINDOW = 64
TINY_NET = '''\
import flax.linen as nn
import jax.numpy as jnp


class MyNet(nn.Module):
    features: int = 4

    @nn.compact
    def __call__(self, x, *, train: bool):
        h = nn.Conv(self.features, (5,), padding="SAME")(x)
        h = nn.BatchNorm(use_running_average=not train, momentum=0.9)(h)
        h = nn.leaky_relu(h, negative_slope=0.2)
        return nn.Conv(2, (5,), padding="SAME")(h)
'''
C_LOG_NOISE = "WARNING: All log messages before absl::InitializeLog()"   # from C++, not ours


def write(folder, name: str, text: str):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def one_line_error(call, *args, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message, message
    return message


# ---------------------------------------------------------------- the three routes

def test_a_file_anywhere_is_a_network_with_options_record_and_names(tmp_path):
    path = write(tmp_path, "my_net.py", TINY_NET)
    spec = f"{path}:MyNet"
    model = models.create_model(spec, features=3)
    assert type(model).__name__ == "MyNet" and model.features == 3
    assert models.model_options(spec) == {"features": 4}
    models.check_model(spec, model, WINDOW)
    record = models.model_source(spec)
    assert record["model"] == spec and record["kind"] == "file" and record["path"] == str(path)
    assert len(record["sha256"]) == 64 and json.loads(json.dumps(record)) == record
    assert models.reference_param_count(spec) is None
    assert models.method_id_of(spec) == "mynet" and models.display_name_of(spec) == "MyNet"
    assert "no option 'depth'" in one_line_error(models.create_model, spec, depth=2)


def test_a_relative_file_is_taken_from_the_current_directory(tmp_path, monkeypatch):
    write(tmp_path, "nets/my_net.py", TINY_NET)
    monkeypatch.chdir(tmp_path)
    assert type(models.create_model("nets/my_net.py:MyNet")).__name__ == "MyNet"
    message = one_line_error(models.create_model, "nets/other.py:MyNet")
    assert str(tmp_path / "nets" / "other.py") in message and "not found" in message


def test_an_importable_module_is_a_network(tmp_path, monkeypatch):
    write(tmp_path, "ext_pkg_a1/__init__.py", "")
    write(tmp_path, "ext_pkg_a1/nets.py", TINY_NET)
    monkeypatch.syspath_prepend(str(tmp_path))
    model = models.create_model("ext_pkg_a1.nets:MyNet")
    models.check_model("ext_pkg_a1.nets:MyNet", model, WINDOW)
    record = models.model_source("ext_pkg_a1.nets:MyNet")
    assert record["kind"] == "module" and record["path"] == str(tmp_path / "ext_pkg_a1" / "nets.py")
    message = one_line_error(models.create_model, "ext_pkg_missing_q7.nets:MyNet")
    assert "no module 'ext_pkg_missing_q7'" in message and "sys.path" in message and str(tmp_path) in message
    message = one_line_error(models.create_model, "ext_pkg_a1.nets:Other")
    assert "defines no Other" in message and "MyNet" in message


def fake_entry_points(monkeypatch, *points: tuple[str, str]) -> None:
    eps = [importlib.metadata.EntryPoint(name, value, external.GROUP) for name, value in points]
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group=None: [ep for ep in eps if group in (None, ep.group)])


def test_an_entry_point_is_a_network_and_built_in_names_win(tmp_path, monkeypatch):
    write(tmp_path, "ext_ep_b2.py", TINY_NET.replace("MyNet", "TheirNet"))
    monkeypatch.syspath_prepend(str(tmp_path))
    fake_entry_points(monkeypatch, ("their_net", "ext_ep_b2:TheirNet"), ("unet", "ext_ep_b2:TheirNet"))
    model = models.create_model("their_net")
    assert type(model).__name__ == "TheirNet"
    models.check_model("their_net", model, WINDOW)
    assert models.model_source("their_net")["value"] == "ext_ep_b2:TheirNet"
    assert models.display_name_of("their_net") == "their_net" and models.method_id_of("their_net") == "their_net"
    assert type(models.create_model("unet")) is models.UNet      # built-in names take precedence
    message = one_line_error(models.create_model, "resnet")
    assert "unknown model 'resnet'" in message and "'ecg_jax.models'" in message and "their_net" in message


# ---------------------------------------------------------------- the contract, one line per broken rule

BROKEN = {
    "not a module": ("class MyNet:\n    pass\n", "not a flax.linen.Module subclass"),
    "no train keyword": ('''\
        class MyNet(nn.Module):
            @nn.compact
            def __call__(self, x):
                return nn.Dense(2)(x)
        ''', "init(key, zeros((2, 64, 2), float32), train=False) fails"),
    "output shape": ('''\
        class MyNet(nn.Module):
            @nn.compact
            def __call__(self, x, *, train):
                return nn.Dense(1)(x)
        ''', "returns shape (2, 64, 1) float32"),
    "output dtype": ('''\
        class MyNet(nn.Module):
            @nn.compact
            def __call__(self, x, *, train):
                return nn.Dense(2)(x).astype(jnp.float16)
        ''', "float16"),
    "train-mode shape": ('''\
        class MyNet(nn.Module):
            @nn.compact
            def __call__(self, x, *, train):
                y = nn.Dense(2)(x)
                return y[:, 1:] if train else y
        ''', 'apply(variables, x, train=True, mutable=["batch_stats"]) returns shape (2, 63, 2)'),
    "collections": ('''\
        class MyNet(nn.Module):
            @nn.compact
            def __call__(self, x, *, train):
                self.variable("cache", "count", lambda: jnp.zeros(()))   # batch_stats is allowed, cache not
                return nn.BatchNorm(use_running_average=not train)(nn.Dense(2)(x))
        ''', "variable collections are batch_stats, cache, params"),
    "not finite": ('''\
        class MyNet(nn.Module):
            @nn.compact
            def __call__(self, x, *, train):
                return nn.Dense(2)(x) * jnp.inf
        ''', "output on a random batch holds NaN or inf"),
    "not deterministic": ('''\
        class MyNet(nn.Module):
            @nn.compact
            def __call__(self, x, *, train):
                return nn.Dense(2)(x) + float(np.random.default_rng().normal())
        ''', "two eval-mode applies to the same input differ"),
}
HEADER = "import flax.linen as nn\nimport jax.numpy as jnp\nimport numpy as np\n\n\n"


@pytest.mark.parametrize("case", list(BROKEN))
def test_each_contract_rule_is_one_config_error_line(tmp_path, case):
    source, expected = BROKEN[case]
    path = write(tmp_path, "net.py", HEADER + textwrap.dedent(source))
    spec = f"{path}:MyNet"

    def build_and_check():
        models.check_model(spec, models.create_model(spec), WINDOW)

    message = one_line_error(build_and_check)
    assert expected in message, message
    assert spec in message


def test_a_file_that_does_not_import_names_its_file_and_line(tmp_path):
    path = write(tmp_path, "bad_import.py", "import flax.linen as nn\n\nimport not_a_module_zz9\n")
    message = one_line_error(models.create_model, f"{path}:MyNet")
    assert f"{path}:3: ModuleNotFoundError: No module named 'not_a_module_zz9'" in message
    path = write(tmp_path, "bad_syntax.py", "import flax.linen as nn\n\n\nclass MyNet(nn.Module:\n    pass\n")
    message = one_line_error(models.create_model, f"{path}:MyNet")
    assert f"{path}:4: SyntaxError" in message
    path = write(tmp_path, "raises.py", "x = 1\ny = x / 0\n")
    assert f"{path}:2: ZeroDivisionError" in one_line_error(models.create_model, f"{path}:MyNet")
    missing = one_line_error(models.create_model, f"{tmp_path / 'none.py'}:MyNet")
    assert f"looked for {tmp_path / 'none.py'}" in missing
    no_class = one_line_error(models.create_model, str(write(tmp_path, "net.py", TINY_NET)) + ":Other")
    assert "defines no Other (Flax modules there: MyNet)" in no_class


def test_a_changed_file_is_refused_unless_allowed(tmp_path):
    path = write(tmp_path, "my_net.py", TINY_NET)
    spec = f"{path}:MyNet"
    workdir = tmp_path / "w"
    workdir.mkdir()
    assert external.check_recorded_source(spec, str(workdir)) is None      # nothing recorded yet
    (workdir / external.SOURCE_RECORD).write_text(json.dumps(models.model_source(spec)))
    assert external.check_recorded_source(spec, str(workdir))["sha256"] == models.model_source(spec)["sha256"]
    path.write_text(TINY_NET.replace("features: int = 4", "features: int = 5"))
    message = one_line_error(external.check_recorded_source, spec, str(workdir))
    assert "changed since" in message and external.ALLOW_CHANGED_FLAG in message
    assert external.check_recorded_source(spec, str(workdir), allow_changed=True)["sha256"] != \
        json.loads((workdir / external.SOURCE_RECORD).read_text())["sha256"]


def test_rows_of_an_external_network_get_its_display_name_in_the_tables():
    from ecg_jax.names import display_name
    from ecg_jax.report.build import build_tables
    from ecg_jax.report.render import runs_csv_text

    row = {"method": "mynet", "noise_type": "emb", "snr_db": 0, "seed": 0, "split": "reference",
           "source": "synthetic", "revision": "paper", "network_label": "MyNet", "epochs": 1,
           "metrics": {k: 1.0 for k in ("snr_db", "rmse", "snr_improvement_db", "prd", "ssd", "mad", "cosine")}}
    assert display_name("mynet", [row]) == "MyNet" and display_name("mynet") == "mynet"
    assert display_name("unet", [row]) == "U-Net"
    assert runs_csv_text([row]).splitlines()[1].startswith("mynet,MyNet,emb,")
    final_row = {**row, "revision": "final", "split": "inter_patient", "seed": 42}
    for rows in ([row], [final_row]):   # the protocol's tables and the final revision's
        labels = [r.label for table in build_tables(rows) for r in table.rows]
        assert labels and set(labels) == {"MyNet"}, labels


# ---------------------------------------------------------------- the command line

def run_cli(args: list[str], tmp_path, cwd) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ECG_JAX_DATA"}
    env.update(ECG_JAX_CACHE=str(tmp_path / "cache"), JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-m", "ecg_jax"] + args, env=env, capture_output=True, text=True,
                          timeout=300, cwd=str(cwd))


def error_line(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith(C_LOG_NOISE)]
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-3000:]
    return lines[0]


TINY_RUN = ["--config", "unet:smoke", "--config.train.epochs=1", "--config.seeds=1", "--config.data.source=synthetic",
            "--config.data.window=64", "--config.data.n_windows=160", "--config.train.batch_size=32",
            "--config.data.synthetic_records=2", "--config.data.synthetic_samples=65000"]


def test_train_and_evaluate_an_external_network_then_refuse_a_changed_file(tmp_path):
    """`ecg-jax train --config.model=my_net.py:MyNet` (relative to the current folder) trains and scores it
    and records the file; `evaluate` from another folder finds it, and refuses it once it changed."""
    path = write(tmp_path, "my_net.py", TINY_NET)
    workdir = tmp_path / "W"
    trained = run_cli(["train", *TINY_RUN, "--config.model=my_net.py:MyNet", f"--workdir={workdir}"],
                      tmp_path, cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "94 parameters each" in trained.stderr   # Conv 2->4 (k5): 44, BatchNorm: 8, Conv 4->2 (k5): 42
    rows = [json.loads(line) for line in (workdir / "results.jsonl").read_text().splitlines()]
    assert [(r["method"], r["network_label"], r["epochs"]) for r in rows] == [("mynet", "MyNet", 1)]
    record = json.loads((workdir / external.SOURCE_RECORD).read_text())
    assert record["model"] == "my_net.py:MyNet" and record["path"] == str(path) and len(record["sha256"]) == 64

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    path.write_text(TINY_NET + "\n# edited after training\n")
    line = error_line(run_cli(["evaluate", f"--workdir={workdir}"], tmp_path, cwd=elsewhere))
    assert "my_net.py:MyNet" in line and "changed since" in line and "--allow_changed_model_source" in line


def test_a_contract_failure_on_the_command_line_is_one_line_and_writes_nothing(tmp_path):
    path = write(tmp_path, "net.py", HEADER + textwrap.dedent(BROKEN["output shape"][0]))
    workdir = tmp_path / "W"
    line = error_line(run_cli(["train", *TINY_RUN, f"--config.model={path}:MyNet", f"--workdir={workdir}"],
                              tmp_path, cwd=tmp_path))
    assert "breaks the network contract" in line and "(2, 64, 1)" in line
    assert not workdir.exists() or not any(workdir.iterdir())
