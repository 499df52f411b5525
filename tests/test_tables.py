"""results.jsonl rows, the tables, the figures and scripts/make_tables.py on fixed numbers."""

import csv
import io
import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from ecg_jax import report
from ecg_jax.errors import DataError
from ecg_jax.metrics import METRIC_NAMES
from ecg_jax.report import examples, figures
from ecg_jax.results import append_rows, make_row, read_rows, replace_rows

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def metrics(snr, rmse):
    m = {k: 0.5 for k in METRIC_NAMES}
    m.update(snr_db=snr, rmse=rmse)
    return m


def row(method, snr_in, seed, snr, rmse, noise="emb", source="physionet", **extra):
    return make_row(method=method, noise_type=noise, snr_db=snr_in, seed=seed, split="reference",
                    source=source, metrics=metrics(snr, rmse), **extra)


def fixed_rows():
    """Hand-checkable numbers, deliberately given out of protocol order.

    emb, input -4 dB:
      FFT (deterministic) SNR 5.0, RMSE 0.01           -> best RMSE (lowest)
      U-Net seeds 0,1,2: SNR 1,2,3 -> 2.0000 ± 1.0000; RMSE .1,.2,.3 -> 0.2000 ± 0.1000
      DANCER seeds 0,1:  SNR 10,12 -> 11.0000 ± 1.4142 (sqrt 2)  -> best SNR (highest)
                         RMSE .05,.07 -> 0.0600 ± 0.0141
      CIADNet one seed:  SNR 4 -> "4.0000 (n=1)"
    U-Net also at 0 dB; every other (method, level) cell is missing.
    """
    rows = [row("dancer", -4, 0, 10.0, 0.05), row("dancer", -4, 1, 12.0, 0.07),
            row("ciadnet", -4, 0, 4.0, 0.5)]
    rows += [row("unet", -4, s, v, r) for s, v, r in [(0, 1.0, 0.1), (1, 2.0, 0.2), (2, 3.0, 0.3)]]
    rows += [row("unet", 0, s, 7.0 + s, 0.1) for s in range(3)]
    rows += [row("fft", -4, None, 5.0, 0.01), row("fft", 2, None, 6.0, 0.02, noise="bw")]
    rows += [row("ciadnet_base", -4, s, 3.0, 0.4) for s in range(2)]
    return rows


# ------------------------------------------------------------------ results.py

def test_make_row_validates():
    good = dict(method="unet", noise_type="emb", snr_db=-4, seed=0, split="reference",
                source="physionet", metrics=metrics(1.0, 0.1))
    r = make_row(**good, experiment="x")
    assert r["experiment"] == "x" and r["snr_db"] == -4 and "diverged" not in r
    for field, bad in [("noise_type", "white"), ("seed", True), ("seed", 1.5), ("split", "random"),
                       ("source", "auto"), ("snr_db", "0"), ("snr_db", math.inf), ("method", "U-Net"),
                       ("metrics", {"snr_db": 1.0}), ("metrics", {**metrics(1, 1), "extra": 1.0})]:
        with pytest.raises(ValueError):
            make_row(**{**good, field: bad})
    flagged = make_row(**{**good, "metrics": metrics(math.nan, 0.1)})
    assert flagged["diverged"] is True


def test_append_read_roundtrip_nan_and_dedup(tmp_path):
    path = tmp_path / "results.jsonl"
    nan_row = row("unet", 0, 1, math.nan, math.nan)
    append_rows(str(path), [row("unet", 0, 0, 1.0, 0.1), nan_row])
    append_rows(str(path), [row("unet", 0, 0, 9.0, 0.9, experiment="rerun")])
    lines = path.read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[1])["metrics"]["snr_db"] is None  # valid JSON
    rows = read_rows([str(tmp_path)])  # a directory works too
    assert len(rows) == 2
    rerun = [r for r in rows if r["seed"] == 0][0]
    assert rerun["metrics"]["snr_db"] == 9.0 and rerun["experiment"] == "rerun"
    diverged = [r for r in rows if r["seed"] == 1][0]
    assert math.isnan(diverged["metrics"]["snr_db"]) and diverged["diverged"] is True


def test_read_rows_errors(tmp_path):
    with pytest.raises(DataError, match="no results file"):
        read_rows([str(tmp_path)])
    (tmp_path / "results.jsonl").write_text('{"method": "unet"}\n')
    with pytest.raises(DataError, match="results.jsonl:1"):
        read_rows(str(tmp_path / "results.jsonl"))


# ------------------------------------------------------------ report: tables

def main_emb(tabs):
    return next(t for t in tabs if t.kind == "main" and t.noise_type == "emb")


def test_cells_mean_std_and_order():
    t = main_emb(report.build_tables(fixed_rows()))
    assert [r.label for r in t.rows] == ["FFT", "U-Net", "CIADNet", "DANCER"]  # protocol order
    assert t.levels == (-4.0, -2.0, 0.0, 2.0, 4.0)
    cells = {r.label: r.cells for r in t.rows}
    assert cells["U-Net"]["snr_db"][0].text() == "2.0000 ± 1.0000"
    assert cells["U-Net"]["rmse"][0].text() == "0.2000 ± 0.1000"
    assert cells["DANCER"]["snr_db"][0].text() == "11.0000 ± 1.4142"
    assert cells["DANCER"]["rmse"][0].text() == "0.0600 ± 0.0141"
    assert cells["FFT"]["snr_db"][0].text() == "5.0000"           # deterministic: one value
    assert cells["CIADNet"]["snr_db"][0].text() == "4.0000 (n=1)"
    assert cells["U-Net"]["snr_db"][1].text() == "—"              # missing, not invented
    # Bold: highest SNR and lowest RMSE per column.
    assert [r.label for r in t.rows if r.cells["snr_db"][0].bold] == ["DANCER"]
    assert [r.label for r in t.rows if r.cells["rmse"][0].bold] == ["FFT"]
    assert [r.label for r in t.rows if r.cells["snr_db"][2].bold] == ["U-Net"]


def test_caption_content():
    tabs = report.build_tables(fixed_rows())
    t = main_emb(tabs)
    assert "emb" in t.caption and "1–3 runs per cell (uneven)" in t.caption
    assert "reference protocol" in t.caption and "PhysioNet" in t.caption
    assert "FFT: deterministic" in t.caption and "SYNTHETIC" not in t.caption
    bw = next(x for x in tabs if x.noise_type == "bw")
    assert [r.label for r in bw.rows] == ["FFT"] and "runs" not in bw.caption
    synthetic = report.build_tables([row("unet", 0, s, 1.0 + s, 0.1, source="synthetic") for s in range(10)])
    assert len(synthetic) == 1 and synthetic[0].caption.startswith("SYNTHETIC data")
    assert "10 runs" in synthetic[0].caption and "SYNTHETIC" in synthetic[0].title


def test_diverged_runs_are_left_out_and_counted():
    rows = [row("unet", 0, 0, 2.0, 0.1), row("unet", 0, 1, math.nan, math.nan), row("dacnn", 0, 0, math.nan, 0.1)]
    t = report.build_tables(rows)[0]
    unet, dacnn = t.rows
    assert unet.cells["snr_db"][2].text() == "2.0000 (n=1)" and dacnn.cells["snr_db"][2].text() == "—"
    assert ("Diverged runs are left out of mean ± std: U-Net at 0 dB (1 of 2 runs; 1 diverged); "
            "DACNN at 0 dB (0 of 1 run; 1 diverged).") in t.caption
    only_nan = report.build_tables([row("unet", 0, 0, math.nan, math.nan)])[0]
    assert "no run with finite metrics" in only_nan.caption


def test_flagged_diverged_run_with_finite_garbage_is_left_out():
    # U-Net at -4 dB: seeds 0-2 give SNR 1,2,3 (2.0000 ± 1.0000), RMSE .1,.2,.3 (0.2000 ± 0.1000);
    # seed 3 diverged but its metrics are finite garbage (with it: mean 251.5).
    rows = [row("unet", -4, s, v, r, epochs=5) for s, v, r in [(0, 1.0, 0.1), (1, 2.0, 0.2), (2, 3.0, 0.3)]]
    rows.append(row("unet", -4, 3, 1000.0, 9.0, epochs=5, diverged=True))
    rows += [row("unet", 0, s, 7.0 + s, 0.1, epochs=5) for s in range(4)]
    t = report.build_tables(rows)[0]
    unet, = t.rows
    snr, rmse = unet.cells["snr_db"], unet.cells["rmse"]
    assert snr[0].text() == "2.0000 ± 1.0000" and rmse[0].text() == "0.2000 ± 0.1000"
    assert (snr[0].n, snr[0].n_runs, snr[0].n_diverged) == (3, 4, 1)
    assert snr[2].text() == "8.5000 ± 1.2910" and (snr[2].n, snr[2].n_diverged) == (4, 0)  # 7,8,9,10
    assert "over 3–4 runs per cell (uneven)" in t.caption
    assert "Diverged runs are left out of mean ± std: U-Net at -4 dB (3 of 4 runs; 1 diverged)." in t.caption
    md = report.render_markdown([t])
    assert "at 0 dB" not in t.caption and "1000.0000" not in md and "251.5000" not in md
    # The figures leave it out too.
    assert figures.snr_curve_series(rows)["emb"]["unet"].means == (2.0, 8.5)


def epoch_rows():
    """U-Net at -4 dB scored at epoch 2 (SNR 1,2,3 -> 2.0000 ± 1.0000; RMSE .1,.2,.3)
    and epoch 3 (SNR 4,6,8 -> 6.0000 ± 2.0000; RMSE .4,.6,.8 -> 0.6000 ± 0.2000), FFT without epochs."""
    rows = [row("unet", -4, s, 1.0 + s, 0.1 * (s + 1), epochs=2) for s in range(3)]
    rows += [row("unet", -4, s, 4.0 + 2 * s, 0.2 * (s + 2), epochs=3) for s in range(3)]
    return rows + [row("fft", -4, None, 5.0, 0.01)]


def test_select_rows_final_epoch_or_asked_epoch():
    rows = epoch_rows()
    final = report.select_rows(rows)
    assert [(r["method"], r["seed"], r.get("epochs")) for r in final] == [
        ("unet", 0, 3), ("unet", 1, 3), ("unet", 2, 3), ("fft", None, None)]
    at2 = report.select_rows(rows, epoch=2)
    assert [(r["method"], r["seed"], r.get("epochs")) for r in at2] == [
        ("unet", 0, 2), ("unet", 1, 2), ("unet", 2, 2), ("fft", None, None)]  # baselines unaffected
    assert report.select_rows(list(reversed(rows))) == list(reversed(final))  # order-independent choice
    assert [r["method"] for r in report.select_rows(rows, epoch=7)] == ["fft"]
    # Rows without epochs (older files) count only when the run has no other.
    legacy = row("unet", -4, 0, 99.0, 0.9)
    assert report.select_rows([rows[3], legacy])[0]["metrics"]["snr_db"] == 4.0
    assert report.select_rows([legacy])[0] is legacy
    # Equal key: the later one wins (a re-evaluation read from a list that was not deduplicated).
    again = row("unet", -4, 0, 5.0, 0.4, epochs=3)
    assert report.select_rows([rows[3], again]) == [again]
    assert report.network_epochs(rows) == [2, 3]


def test_tables_use_the_final_epoch_unless_asked():
    rows = epoch_rows()
    final = main_emb(report.build_tables(rows))
    unet = next(r for r in final.rows if r.method == "unet")
    assert unet.cells["snr_db"][0].text() == "6.0000 ± 2.0000" and unet.cells["rmse"][0].text() == "0.6000 ± 0.2000"
    assert "Networks scored at their final epoch (3)." in final.caption and "3 runs" in final.caption
    at2 = main_emb(report.build_tables(rows, epoch=2))
    unet2 = next(r for r in at2.rows if r.method == "unet")
    assert unet2.cells["snr_db"][0].text() == "2.0000 ± 1.0000" and unet2.cells["rmse"][0].text() == "0.2000 ± 0.1000"
    assert "Networks scored at epoch 2." in at2.caption and "final epoch" not in at2.caption
    assert "networks at epoch 2" in at2.title
    fft = next(r for r in at2.rows if r.method == "fft")
    assert fft.cells["snr_db"][0].text() == "5.0000"
    # A run without a row at the asked epoch is counted, not shown.
    more = rows + [row("unet", -4, 3, 7.0, 0.1, epochs=3)]
    at2 = main_emb(report.build_tables(more, epoch=2))
    assert "1 network run without a result at epoch 2 not shown." in at2.caption
    assert next(r for r in at2.rows if r.method == "unet").cells["snr_db"][0].text() == "2.0000 ± 1.0000"
    # Different final epochs per method are spelled out.
    mixed = rows + [row("dancer", -4, s, 10.0 + 2 * s, 0.05, epochs=e) for s, e in [(0, 4), (1, 5)]]
    t = main_emb(report.build_tables(mixed))
    assert "Networks scored at each run's final epoch (U-Net 3, DANCER 4–5)." in t.caption
    legacy = main_emb(report.build_tables([row("unet", -4, 0, 1.0, 0.1)]))
    assert "scoring epoch not recorded" in legacy.caption
    # The figures use the same rows.
    assert figures.snr_curve_series(rows)["emb"]["unet"].means == (6.0,)
    assert figures.snr_curve_series(rows, epoch=2)["emb"]["unet"].means == (2.0,)


def test_reevaluation_neither_duplicates_nor_changes_the_final_tables(tmp_path):
    path = str(tmp_path / "results.jsonl")
    final = [r for r in epoch_rows() if r.get("epochs") != 2]
    replace_rows(path, final)
    before = report.write_tables(read_rows(path), str(tmp_path / "before"))
    # Evaluating the final checkpoint again (replace_rows) and an older file that appended twice.
    replace_rows(path, final)
    append_rows(path, final)
    # `evaluate.py --epoch 2` adds rows of an older checkpoint.
    replace_rows(path, [r for r in epoch_rows() if r.get("epochs") == 2])
    rows = read_rows(path)
    assert len(rows) == 7  # 3 runs x 2 epochs + FFT
    after = report.write_tables(rows, str(tmp_path / "after"))
    for kind in ("markdown", "html", "csv"):
        assert open(after[kind]).read() == open(before[kind]).read(), kind
    unet = next(r for r in main_emb(report.build_tables(rows)).rows if r.method == "unet")
    assert unet.cells["snr_db"][0].n == 3 and unet.cells["snr_db"][0].n_runs == 3
    with open(after["csv"]) as f:
        assert len(list(csv.DictReader(f))) == 4


def test_ablation_table():
    abl = [t for t in report.build_tables(fixed_rows()) if t.kind == "ablation"]
    assert len(abl) == 1 and abl[0].noise_type == "emb"
    assert [r.label for r in abl[0].rows] == ["Baseline (U-Net)", "+ Channel & Spatial Shrink"]
    # Without ablation variants there is no ablation table.
    assert not [t for t in report.build_tables([row("ciadnet", 0, 0, 1.0, 0.1)]) if t.kind == "ablation"]


def test_protocols_never_mix_and_extra_levels():
    rows = fixed_rows() + [row("unet", 6, 0, 1.0, 0.1, source="synthetic")]
    tabs = report.build_tables(rows)
    assert {(t.source, t.noise_type, t.kind) for t in tabs} == {
        ("physionet", "emb", "main"), ("physionet", "bw", "main"), ("physionet", "emb", "ablation"),
        ("synthetic", "emb", "main")}
    assert next(t for t in tabs if t.source == "synthetic").levels == (-4, -2, 0, 2, 4, 6)


def test_html_structure():
    html = report.render_html([main_emb(report.build_tables(fixed_rows()))])
    assert html.count('colspan="5"') == 2 and html.count('rowspan="2"') == 1
    assert ">SNR(dB)</th>" in html and ">RMSE</th>" in html
    body_rows = re.findall(r"<tr><td>.*?</tr>", html)
    assert len(body_rows) == 4
    assert all(r.count("<td>") == 11 for r in body_rows)  # method + 10 values
    assert "<td><b>11.0000 ± 1.4142</b></td>" in html and "<td><b>0.0100</b></td>" in html
    assert "<td>—</td>" in html and "<caption>" in html


def test_markdown_structure():
    md = report.render_markdown([main_emb(report.build_tables(fixed_rows()))])
    header = next(line for line in md.splitlines() if line.startswith("| Method"))
    cols = [c.strip() for c in header.strip("|").split("|")]
    assert cols == ["Method"] + [f"SNR(dB) {v}" for v in (-4, -2, 0, 2, 4)] + [f"RMSE {v}" for v in (-4, -2, 0, 2, 4)]
    dancer = next(line for line in md.splitlines() if line.startswith("| DANCER"))
    assert "**11.0000 ± 1.4142**" in dancer and dancer.count("|") == 12


def test_write_tables_and_runs_csv(tmp_path):
    rows = fixed_rows() + [row("unet", 2, 5, 1.0, 0.1, experiment="e1")]
    paths = report.write_tables(rows, str(tmp_path))
    assert set(paths) == {"html", "markdown", "csv"}
    assert all(os.path.getsize(p) > 0 for p in paths.values())
    with open(paths["csv"]) as f:
        header = next(csv.reader(f))
        f.seek(0)
        records = list(csv.DictReader(f))
    assert len(records) == len(rows) and len(header) == len(set(header))
    assert header[:10] == ["method", "display_name", "noise_type", "input_snr_db", "seed", "split", "source",
                           "revision", "epochs", "diverged"]
    assert header[10:] == ["output_snr_db", "rmse_mv", "snr_improvement_db", "prd_percent", "ssd_mv2", "mad_mv",
                          "cosine", "experiment"]
    fft = next(r for r in records if r["method"] == "fft" and r["noise_type"] == "emb")
    assert fft["seed"] == "" and float(fft["rmse_mv"]) == 0.01 and fft["display_name"] == "FFT"
    assert (fft["input_snr_db"], fft["output_snr_db"], fft["epochs"], fft["diverged"]) == ("-4", "5.0", "", "false")
    extra = next(r for r in records if r["experiment"] == "e1")
    assert extra["seed"] == "5" and extra["input_snr_db"] == "2"


def test_runs_csv_lists_diverged_runs_with_their_flag_and_unique_columns():
    rows = [row("unet", 0, 0, 2.0, 0.1, epochs=4), row("unet", 0, 1, 1000.0, 9.0, epochs=4, diverged=True),
            row("unet", 0, 2, math.nan, math.nan, epochs=4, display_name="clash", note={"a": 1})]
    text = report.runs_csv_text(rows)
    header = text.splitlines()[0].split(",")
    assert len(header) == len(set(header)) and header[-2:] == ["extra_display_name", "note"]
    records = list(csv.DictReader(io.StringIO(text)))
    assert [(r["seed"], r["epochs"], r["diverged"]) for r in records] == [
        ("0", "4", "false"), ("1", "4", "true"), ("2", "4", "true")]
    assert records[1]["output_snr_db"] == "1000.0" and records[2]["output_snr_db"] == "nan"
    assert records[2]["display_name"] == "U-Net" and records[2]["extra_display_name"] == "clash"
    assert json.loads(records[2]["note"]) == {"a": 1}


# ----------------------------------------------------------- report: figures

def test_snr_curve_series_are_the_means():
    series = figures.snr_curve_series(fixed_rows())
    assert list(series) == ["emb", "bw"]
    unet = series["emb"]["unet"]
    assert unet.levels == (-4.0, 0.0) and unet.means == (2.0, 8.0) and unet.stds == (1.0, 1.0)
    assert unet.counts == (3, 3)
    assert series["emb"]["dancer"].stds[0] == pytest.approx(math.sqrt(2))
    assert series["emb"]["fft"].stds == (0.0,)
    # Protocol order; the ablation-only variants stay out unless asked for.
    assert list(series["emb"]) == ["fft", "unet", "ciadnet", "dancer"]
    with_ablation = figures.snr_curve_series(fixed_rows(), methods=["ciadnet_base"])
    assert with_ablation["emb"]["ciadnet_base"].means == (3.0,) and with_ablation["bw"] == {}


def test_figures_are_written(tmp_path):
    paths = figures.plot_snr_curves(fixed_rows(), str(tmp_path / "curves"))
    L = 64
    t = np.linspace(0, 1, L)
    clean = np.stack([np.sin(6 * t), np.cos(6 * t)], axis=-1)
    paths += figures.plot_denoising_example(clean, clean + 0.1, {"U-Net": clean * 0.9}, 360, "x",
                                            str(tmp_path / "ex"))
    assert [os.path.basename(p) for p in paths] == ["curves.png", "curves.svg", "ex.png", "ex.svg"]
    assert all(os.path.getsize(p) > 1000 for p in paths)
    with pytest.raises(ValueError):
        figures.plot_snr_curves(fixed_rows() + [row("unet", 0, 0, 1.0, 0.1, source="synthetic")], "x")


def test_load_examples_and_bad_files(tmp_path):
    L = 32
    clean = np.ones((L, 2))
    np.savez(tmp_path / "work.npz", clean=clean, **{"noisy/bw/2": clean + 2, "noisy/emb/0": clean + 1,
                                                    "denoised/emb/0/1": clean * 3, "denoised/emb/0/0": clean * 0.5})
    wk, = examples.load_examples(str(tmp_path / "work.npz"), method="dancer")
    assert (wk.noise_type, wk.snr_db) == ("emb", 0.0) and np.allclose(wk.outputs["DANCER"], 0.5)
    # Another workdir's output on the same window joins the same figure.
    np.savez(tmp_path / "unet.npz", clean=clean, **{"noisy/emb/0": clean + 1, "denoised/emb/0/0": clean * 0.7})
    other, = examples.load_examples(str(tmp_path / "unet.npz"), method="unet")
    merged = examples.merge_examples([wk, other])
    assert len(merged) == 1 and set(merged[0].outputs) == {"DANCER", "U-Net"}
    warnings = []
    assert examples.load_examples(str(tmp_path / "work.npz"), warn=warnings.append) == []  # method unknown
    np.savez(tmp_path / "bad.npz", clean=clean, **{"noisy/emb/0": np.ones(3)})
    assert examples.load_examples(str(tmp_path / "bad.npz"), method="unet", warn=warnings.append) == []
    assert "method is unknown" in warnings[0] and "'noisy/emb/0' has shape (3,)" in warnings[1]
    (tmp_path / "junk.npz").write_text("not a zip")
    warnings = []
    assert examples.load_examples(str(tmp_path / "junk.npz"), warn=warnings.append) == []
    assert warnings and "junk.npz" in warnings[0]


# ------------------------------------------------------- scripts/make_tables.py

def test_make_tables_script(tmp_path):
    baselines_dir, net_dir, unet_dir = tmp_path / "base", tmp_path / "net", tmp_path / "unet"
    out = tmp_path / "out"
    rows = fixed_rows()
    append_rows(str(baselines_dir / "results.jsonl"), [r for r in rows if r["method"] == "fft"])
    append_rows(str(net_dir / "results.jsonl"), [r for r in rows if r["method"] not in ("fft", "unet")])
    # A training workdir of one method, with its examples.npz
    append_rows(str(unet_dir / "results.jsonl"), [r for r in rows if r["method"] == "unet"])
    clean = np.zeros((40, 2))
    np.savez(unet_dir / "examples.npz", clean=clean, **{"noisy/emb/-4": clean + 1, "denoised/emb/-4/0": clean})
    proc = subprocess.run([sys.executable, "scripts/make_tables.py",
                           f"--results={baselines_dir},{net_dir},{unet_dir}",
                           f"--out={out}"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "| DANCER |" in proc.stdout and "**11.0000 ± 1.4142**" in proc.stdout
    for name in ["tables.html", "tables.md", "runs.csv", "snr_curves.png", "snr_curves.svg",
                 "example_emb_-4dB.png", "example_emb_-4dB.svg"]:
        assert (out / name).stat().st_size > 0, name
    bad = subprocess.run([sys.executable, "scripts/make_tables.py", f"--results={tmp_path / 'nope'}",
                          f"--out={out}"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error: no results file")
