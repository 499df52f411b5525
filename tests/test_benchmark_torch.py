"""`ecg-jax benchmark` with the PyTorch twins: the twin registry (benchmarks/torch_twins.py) covers every
registered network, each twin is the one its parity test checks, and the command writes JAX and PyTorch
rows for every network it measures. How fast anything is is measured by the command, never here."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import subprocess
import sys

import pytest

from ecg_jax.commands import benchmark
from ecg_jax.models import MODEL_NAMES, reference_param_count

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
BENCHMARKS = REPO_ROOT / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import torch_twins  # noqa: E402  (imports no torch)

HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH,
                                 reason="torch not installed: pip install -r benchmarks/requirements.txt")


def test_every_registered_network_has_a_twin_or_a_reason():
    assert set(torch_twins.TWINS) | set(torch_twins.NO_TWIN) == set(MODEL_NAMES)
    assert not set(torch_twins.TWINS) & set(torch_twins.NO_TWIN)
    for name, reason in torch_twins.NO_TWIN.items():
        assert reason.startswith("no PyTorch twin") and "\n" not in reason
        assert torch_twins.describe(name) == reason
        with pytest.raises(ValueError, match="no PyTorch twin"):
            torch_twins.create_twin(name)


def test_every_twin_entry_names_a_class_of_benchmarks_and_its_parity_test():
    for name, twin in torch_twins.TWINS.items():
        source = (BENCHMARKS / f"{twin.module}.py").read_text()
        assert f"class {twin.cls}(" in source, name
        assert twin.cls in (REPO_ROOT / twin.parity_test).read_text() or "create_torch_model" in (
            REPO_ROOT / twin.parity_test).read_text(), name


@needs_torch
@pytest.mark.parametrize("name", sorted(torch_twins.TWINS))
def test_twin_is_the_parity_tests_twin_with_the_jax_defaults(name):
    """The twin the benchmark builds is the class (and options) the parity tests compare with the Flax
    network, and has the JAX network's (models.md) parameter count, so its options are the defaults."""
    import torch_dance_final
    import torch_final_cnns
    import torch_models
    import torch_ralenet

    twin = torch_twins.create_twin(name)
    if name in torch_models.TORCH_MODELS:                 # tests/test_torch_twins.py
        parity = torch_models.create_torch_model(name)
    elif name in torch_final_cnns.TORCH_MODELS:           # tests/test_final_cnns.py
        parity = torch_final_cnns.create_torch_model(name)
    elif name == "dacnn":                                 # tests/test_final_cnns.py: TorchDACNN(paper kernels)
        parity = torch_final_cnns.TorchDACNN(*torch_final_cnns.DACNN_PAPER_KERNELS)
    elif name == "ralenet":                               # tests/test_ralenet.py: TorchRALENet()
        parity = torch_ralenet.TorchRALENet()
    else:                                                 # tests/test_dance_final.py
        parity = torch_dance_final.TorchDANCEFinal(*torch_dance_final.VARIANTS[name])
        assert tuple(torch_twins.TWINS[name].kwargs.values()) == torch_dance_final.VARIANTS[name]
    assert type(twin) is type(parity)
    assert [p.shape for p in twin.parameters()] == [p.shape for p in parity.parameters()]
    assert torch_models.count_params(twin) == reference_param_count(name)


def test_a_network_without_a_twin_gets_a_row_with_the_reason_and_no_process():
    row = benchmark.measure_torch_twin("ciadnet", steps=1, compile=True, timeout=1)
    assert row["case"] == "torch" and row["loop"] == "compile"
    assert row["skipped"] == torch_twins.NO_TWIN["ciadnet"] and "member_steps_per_s" not in row


def test_markdown_table_has_the_machine_the_command_and_one_row_per_network():
    header = {"cpu_model": "Some CPU", "cpu_count": 2, "load_average_start": "0.10 0.20 0.30",
              "load_average_end": "0.40 0.50 0.60", "backend": "cpu", "device_kind": "cpu", "n_devices": 1,
              "jax": "0.0", "torch": "2.0", "torch_threads": 0, "command": "ecg-jax benchmark --models unet,acdae",
              "steps": 1, "repeats": 1, "seeds": 1, "default_mode": "scan/one-by-one", "torch_compile_timeout": 300}
    flops = {"forward_flops_per_window": 14.4e6, "train_step_flops": 2.0e9}
    unet = [{"model": "unet", "loop": "scan", "case": "one-by-one", "member_steps_per_s": 10.0, "compile_s": 3.0,
             "n_params": 200_994},
            {"model": "unet", "loop": "scan", "case": "vmap", "member_steps_per_s": 12.0, "compile_s": 4.0,
             "n_params": 200_994},
            benchmark.torch_row("unet", "eager", twin="torch_models.TorchUNet()", member_steps_per_s=5.0,
                                n_params=200_994),
            benchmark.torch_row("unet", "compile", twin="torch_models.TorchUNet()",
                                skipped="timeout: not finished in 300 s")]
    acdae = [{"model": "acdae", "loop": "scan", "case": "one-by-one", "member_steps_per_s": 9.0, "compile_s": 2.0,
              "n_params": 201_006},
             benchmark.torch_row("acdae", "eager", skipped=torch_twins.NO_TWIN["acdae"]),
             benchmark.torch_row("acdae", "compile", skipped=torch_twins.NO_TWIN["acdae"])]
    summaries = [benchmark.network_summary("unet", unet, flops, "scan/one-by-one"),
                 benchmark.network_summary("acdae", acdae, flops, "scan/one-by-one")]
    assert summaries[0]["jax_best"]["mode"] == "scan/vmap" and summaries[0]["jax_default"]["member_steps_per_s"] == 10
    assert summaries[0]["gflop_per_s"] == {"jax_default": 20.0, "jax_best": 24.0, "torch_eager": 10.0}
    table = benchmark.markdown_table(header, summaries)
    assert "Some CPU, 2 cores" in table and "0.10 0.20 0.30" in table and "0.40 0.50 0.60" in table
    assert "`ecg-jax benchmark --models unet,acdae`" in table
    rows = [line for line in table.splitlines() if line.startswith("| unet") or line.startswith("| acdae")]
    assert len(rows) == 2
    assert "| 12.0 (scan/vmap) |" in rows[0] and "timeout: not finished in 300 s" in rows[0]
    assert "| no PyTorch twin |" in rows[1]
    columns = next(line for line in table.splitlines() if line.startswith("| network")).count("|")
    assert all(row.count("|") == columns for row in rows)


@needs_torch
@pytest.mark.slow
def test_benchmark_command_writes_jax_and_torch_rows_for_each_network(tmp_path):
    """Through the real CLI, one step of everything: both networks get JAX rows and both PyTorch rows
    (eager measured; torch.compile measured or stopped by the 2 s limit, never a crash)."""
    out = tmp_path / "B.json"
    table = tmp_path / "B.md"
    proc = subprocess.run([sys.executable, "-m", "ecg_jax", "benchmark", "--models", "unet,acdae_final",
                           "--seeds", "1", "--steps", "1", "--repeats", "1", "--cases", "one-by-one",
                           "--torch_threads", "1", "--torch_compile_timeout", "2", "--json", str(out),
                           "--markdown", str(table)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["complete"] and result["models"] == ["unet", "acdae_final"]
    for name in ("unet", "acdae_final"):
        rows = [r for r in result["results"] if r["model"] == name]
        assert [r["case"] for r in rows if r["case"] != "torch"] == ["one-by-one"]
        torch_rows = {r["loop"]: r for r in rows if r["case"] == "torch"}
        assert set(torch_rows) == {"eager", "compile"}
        assert torch_rows["eager"]["member_steps_per_s"] > 0
        assert torch_rows["eager"]["n_params"] == reference_param_count(name)
        compiled = torch_rows["compile"]
        assert compiled.get("member_steps_per_s", 0) > 0 or compiled["skipped"].startswith("timeout")
    summaries = {s["model"]: s for s in result["networks"]}
    assert set(summaries) == {"unet", "acdae_final"}
    for s in summaries.values():
        assert s["jax_default"]["member_steps_per_s"] > 0 and s["jax_best"]["member_steps_per_s"] > 0
        assert s["forward_flops_per_window"] > 0 and s["train_step_flops"] > s["forward_flops_per_window"]
        assert s["gflop_per_s"]["torch_eager"] > 0
    md = table.read_text()
    assert md == result["markdown"] + "\n" and md in proc.stdout
    assert "`python -m ecg_jax benchmark --models unet,acdae_final --seeds 1 " in md
    assert sum(line.startswith(("| unet", "| acdae_final")) for line in md.splitlines()) == 2
