"""configs/paper.py and scripts/reproduce.py: the one-command reproduction of the grid.

The end-to-end tests run a tiny reproduction in-process on the PhysioNet copies
(two networks, FFT and DWT, one noise type, two SNRs, two seeds, 256 windows,
one epoch): about a minute on the 2-core development CPU, most of it compiling
the two training programs.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import io
import os
import sys
import types

import numpy as np
import pytest

from ecg_jax.baselines import DWT_THRESHOLD, FFT_THRESHOLD, dwt_denoise, fft_denoise
from ecg_jax.errors import ConfigError
from ecg_jax.results import read_rows

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TABLE_ORDER = ["unet", "dacnn", "acdae", "ags_unet", "ciadnet", "dancer",
               "ciadnet_base", "ciadnet_channel", "ciadnet_spatial"]


def _load(key: str, path: str):
    if key not in sys.modules:  # once per session
        spec = importlib.util.spec_from_file_location(key, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[key] = module
    return sys.modules[key]


paper = _load("_config_paper", os.path.join(REPO, "configs", "paper.py"))
from ecg_jax import reproduce  # noqa: E402


def run_logged(config, workdir) -> tuple[dict, str]:
    """reproduce() with its stderr log captured (and echoed, for a failing test's report)."""
    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        paths = reproduce.reproduce(config, str(workdir))
    sys.stdout.write(buf.getvalue())
    return paths, buf.getvalue()


def tiny_config(data_dir, networks=("unet", "ciadnet_base")):
    c = paper.get_config("smoke")
    c.networks = networks
    c.noise_types = ("emb",)
    c.snr_levels = (-4, 4)
    c.seeds = 2
    c.train.epochs = 1
    c.data.n_windows = 256
    c.data.source = "physionet"  # the acceptance condition is real data: never fall back
    c.data.data_dir = str(data_dir)
    return c


@pytest.fixture(scope="module")
def smoke_run(shared_data_dir, tmp_path_factory):
    config = tiny_config(shared_data_dir)
    workdir = tmp_path_factory.mktemp("reproduce")
    paths, log = run_logged(config, workdir)
    return types.SimpleNamespace(config=config, workdir=workdir, paths=paths, log=log)


# ------------------------------------------------------------------ configs/paper.py

def test_paper_config_runs_every_network_and_the_ablation_in_table_order():
    c = paper.get_config()
    assert list(c.networks) == TABLE_ORDER
    assert c.baselines_enabled is True
    assert (c.seeds, c.train.epochs, c.data.n_windows) == (10, 100, 10000)
    assert tuple(c.noise_types) == ("emb", "bw", "ma", "em") and tuple(c.snr_levels) == (-4, -2, 0, 2, 4)


def test_smoke_variant_is_small_and_keeps_minus_4_db_for_the_example_figure():
    c = paper.get_config("smoke")
    assert (c.seeds, c.train.epochs, c.data.n_windows) == (2, 1, 1000)
    assert tuple(c.noise_types) == ("emb", "bw") and tuple(c.snr_levels) == (-4, 4)
    assert list(c.networks) == TABLE_ORDER


@pytest.mark.parametrize("experiment,model,kwargs", [
    ("unet", "unet", {}),
    ("ciadnet", "ciadnet", {"channel_shrink": True, "spatial_shrink": True}),
    ("ciadnet_channel", "ciadnet", {"channel_shrink": True, "spatial_shrink": False}),
    ("ciadnet_base", "ciadnet", {"channel_shrink": False, "spatial_shrink": False}),
])
def test_experiment_config_takes_the_network_from_its_file_and_the_grid_from_the_paper(experiment, model, kwargs):
    c = paper.get_config("smoke")
    c.seeds = 3
    c.snr_levels = (-4,)
    c.train.epochs = 7
    config = reproduce.experiment_config(c, experiment)
    assert (config.model, config.model_kwargs.to_dict(), config.experiment) == (model, kwargs, experiment)
    assert (config.seeds, config.snr_levels, config.train.epochs) == (3, (-4,), 7)
    assert config.data.n_windows == 1000  # the paper's smoke data, not the network file's full size


def test_networks_override_is_a_comma_string():
    c = paper.get_config()
    c.networks = ("dancer,ciadnet_spatial",)  # what --config.networks=dancer,ciadnet_spatial produces
    assert reproduce.experiment_ids(c) == ["dancer", "ciadnet_spatial"]


@pytest.mark.parametrize("networks,message", [
    (("unet,transformer",), r"unknown experiment 'transformer'.*valid: acdae, ags_unet, ciadnet, "),
    (("unet,unet",), "duplicates"),
])
def test_bad_network_lists_are_refused(networks, message):
    c = paper.get_config()
    c.networks = networks
    with pytest.raises(ConfigError, match=message):
        reproduce.experiment_ids(c)


# ------------------------------------------------------------------ scripts/reproduce.py

def test_reproduction_writes_tables_and_figures_with_baselines_and_networks(smoke_run):
    paths = smoke_run.paths
    for key in ("html", "markdown", "csv", "snr_curves", "example", "example_ablation", "timings"):
        assert os.path.getsize(paths[key]) > 0, key
    assert os.path.dirname(paths["html"]) == os.path.join(str(smoke_run.workdir), "tables")

    with open(paths["csv"]) as f:
        runs = list(csv.DictReader(f))
    counts = {m: sum(r["method"] == m for r in runs) for m in ("fft", "dwt", "unet", "ciadnet_base")}
    assert counts == {"fft": 2, "dwt": 2, "unet": 4, "ciadnet_base": 4}  # 2 SNRs (x 2 seeds)
    assert len(runs) == 12 and {r["source"] for r in runs} == {"physionet"}

    markdown = open(paths["markdown"]).read()
    html = open(paths["html"]).read()
    for label in ("FFT", "DWT", "U-Net", "Baseline (U-Net)"):
        assert f"| {label} |" in markdown and f"<td>{label}</td>" in html
    # The tables hold the baseline rows' own numbers.
    fft = [r for r in read_rows(smoke_run.workdir / "baselines") if r["method"] == "fft"]
    for r in fft:
        assert f"{r['metrics']['snr_db']:.4f}" in markdown
    assert "data source: PhysioNet" in smoke_run.log


def test_example_figure_shows_every_method_on_the_same_window(smoke_run):
    clean, noisy, fs, _ = reproduce.example_window(smoke_run.config, "emb", -4.0)
    with np.load(smoke_run.workdir / "unet" / "examples.npz") as z:
        np.testing.assert_allclose(z["clean"], clean, atol=1e-6)
        np.testing.assert_allclose(z["noisy/emb/-4"], noisy, atol=1e-5)
        seed0 = z["denoised/emb/-4/0"]
    assert fs == 360.0 and clean.shape == (256, 2)

    baseline_rows = read_rows(smoke_run.workdir / "baselines")
    outputs = reproduce.baseline_outputs(noisy, baseline_rows, "emb", -4.0)
    np.testing.assert_allclose(outputs["fft"], fft_denoise(noisy[None], FFT_THRESHOLD)[0])
    np.testing.assert_allclose(outputs["dwt"], dwt_denoise(noisy[None], DWT_THRESHOLD)[0])
    np.testing.assert_array_equal(
        reproduce.network_output(str(smoke_run.workdir / "unet"), clean, "emb", -4.0), seed0)


def _results_state(workdir) -> dict[str, tuple[int, str]]:
    out = {}
    for name in ("baselines", "unet", "ciadnet_base"):
        path = workdir / name / "results.jsonl"
        out[name] = (os.stat(path).st_mtime_ns, path.read_text())
    return out


def test_rerun_skips_every_finished_experiment(smoke_run):
    before = _results_state(smoke_run.workdir)
    tables_before = open(smoke_run.paths["markdown"]).read()
    _, log = run_logged(smoke_run.config, smoke_run.workdir)
    for name in ("baselines", "unet", "ciadnet_base"):
        assert f"{name}: done, skipping" in log
    assert "training" not in log and "resuming" not in log
    assert _results_state(smoke_run.workdir) == before
    assert open(smoke_run.paths["markdown"]).read() == tables_before


def test_an_experiment_without_all_its_results_resumes_from_its_checkpoint(smoke_run):
    results = smoke_run.workdir / "unet" / "results.jsonl"
    before = {(r["snr_db"], r["seed"]): r["metrics"] for r in read_rows(results)}
    epochs_log = (smoke_run.workdir / "unet" / "metrics.jsonl").read_text()
    lines = results.read_text().splitlines(keepends=True)
    results.write_text("".join(lines[:-1]))  # as if killed before the last row was written
    config = tiny_config(smoke_run.config.data.data_dir, networks=("unet",))
    _, log = run_logged(config, smoke_run.workdir)
    assert "unet: resuming" in log and "baselines: done, skipping" in log
    after = {(r["snr_db"], r["seed"]): r["metrics"] for r in read_rows(results)}
    assert after.keys() == before.keys()
    # No epoch was trained again: the checkpoint after the last epoch was restored and evaluated.
    assert (smoke_run.workdir / "unet" / "metrics.jsonl").read_text() == epochs_log
    for key, metrics in before.items():  # restored after the last epoch: the same evaluation
        assert after[key]["snr_db"] == pytest.approx(metrics["snr_db"], abs=1e-4)


# ------------------------------------------------------------------ configs/final.py:all

final = _load("_config_final", os.path.join(REPO, "configs", "final.py"))


@pytest.mark.slow
def test_final_benchmark_writes_its_four_tables_beside_the_published_cells(shared_data_dir, published_json, tmp_path):
    """`final:all,smoke` cut to the final U-Net (plus DWT and EMD; ~2.5 min): the final README's four tables,
    each network row followed by its published cell and our difference, computed here by hand."""
    from ecg_jax import report

    c = final.get_config("all,smoke")
    c.networks = ("unet",)
    c.data.source = "physionet"
    c.data.data_dir = str(shared_data_dir)
    published = report.load_published(str(published_json))
    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        paths = reproduce.reproduce(c, str(tmp_path), published=published)
    text = open(paths["markdown"]).read()
    titles = [line for line in text.splitlines() if line.startswith("### Final revision")]
    assert [t.split(" — ")[0] for t in titles] == [
        "### Final revision: every noise type at input SNR -4 dB",
        "### Final revision: emb (bw + em + ma) at input SNR -4..4 dB",
        "### Final revision, components: U-Net + ATNC with one attention module in the decoder, emb",
        "### Final revision, ablation: U-Net with AREM, ATNC, both, emb"]

    ours = {(r["noise_type"], r["snr_db"]): r["metrics"]["snr_db"]
            for r in read_rows(tmp_path / "unet" / "results.jsonl")}
    emb = text.split(titles[1])[1].split("### ")[0].splitlines()
    unet = emb.index(next(line for line in emb if line.startswith("| U-Net |")))
    def cells(line):
        return [c.strip() for c in line.strip("|").split("|")][1:]
    shown = f"{ours['emb', -4]:.4f}"
    assert cells(emb[unet])[0] == f"{shown} (n=1)"
    assert cells(emb[unet + 1])[:5] == ["5.3300", "6.1500", "6.6900", "7.7500", "8.6800"]   # published "final"
    assert cells(emb[unet + 2])[0] == f"{float(shown) - 5.33:+.4f}"                         # as shown - published
    assert cells(emb[unet + 2])[1] == "—"                                                   # not run: -2 dB
    assert "Rows without results: EMD" not in text and "DRSN" in text.split(titles[1])[1].split("### ")[0]
    assert "+ ATNC & SE" in text.split(titles[2])[1].split("### ")[0]                       # named as missing
