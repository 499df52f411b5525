"""Protocol revisions in results and tables, the empty-cell notes, and make_tables --compare published."""

import json
import os
import subprocess
import sys

import pytest

from ecg_jax import report
from ecg_jax.errors import ConfigError
from ecg_jax.metrics import METRIC_NAMES
from ecg_jax.results import append_rows, key_of, make_row, read_rows, replace_rows, row_key, run_key

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def metrics(snr, rmse):
    m = {k: 0.5 for k in METRIC_NAMES}
    m.update(snr_db=snr, rmse=rmse)
    return m


def row(method, snr_in, seed, snr, rmse, noise="emb", revision="paper", split="reference", **extra):
    return make_row(method=method, noise_type=noise, snr_db=snr_in, seed=seed, split=split,
                    source="physionet", metrics=metrics(snr, rmse), revision=revision, **extra)


def test_revision_is_part_of_the_run_key(tmp_path):
    paper, first = row("fft", -4, None, -4.0, 0.5), row("fft", -4, None, 1.5, 0.4, revision="first")
    assert paper["revision"] == "paper" and run_key(paper) != run_key(first)
    assert run_key(paper) == key_of("fft", "emb", -4, None, "reference", "physionet")  # 6 fields, as before
    assert run_key(first) == key_of("fft", "emb", -4, None, "reference", "physionet", "first")
    path = str(tmp_path / "results.jsonl")
    replace_rows(path, [paper])
    replace_rows(path, [first])                      # does not replace the paper row
    assert {r["revision"] for r in read_rows(path)} == {"paper", "first"}
    replace_rows(path, [row("fft", -4, None, -3.0, 0.5)])  # replaces the paper row only
    got = {r["revision"]: r["metrics"]["snr_db"] for r in read_rows(path)}
    assert got == {"paper": -3.0, "first": 1.5}
    with pytest.raises(ValueError):
        row("fft", -4, None, 1.0, 0.1, revision="second")


def test_old_rows_without_revision_read_as_paper(tmp_path):
    old = {"method": "unet", "noise_type": "emb", "snr_db": 0, "seed": 1, "split": "reference",
           "source": "physionet", "metrics": metrics(7.0, 0.2), "epochs": 100}
    (tmp_path / "results.jsonl").write_text(json.dumps(old) + "\n")
    r, = read_rows(str(tmp_path))
    assert r["revision"] == "paper" and row_key(r) == row_key(row("unet", 0, 1, 1.0, 1.0, epochs=100))


def test_emd_row_after_dwt_and_revisions_named():
    rows = [row("unet", -4, 0, 7.0, 0.2, split="inter_patient", revision="final"),
            row("emd", -4, None, 3.0, 0.3, split="inter_patient", revision="final"),
            row("dwt", -4, None, 2.0, 0.3, split="inter_patient", revision="final")]
    # the final README's layout: by noise at -4 dB, emb, and the U-Net row of components and ablation
    by_noise, t, components, ablation = report.build_tables(rows)
    assert [r.label for r in components.rows] == ["U-Net"] and [r.label for r in ablation.rows] == ["Baseline (U-Net)"]
    assert [r.label for r in t.rows] == ["DWT", "EMD", "U-Net"] == [r.label for r in by_noise.rows]
    assert "emb" in t.title and 'Protocol revision: "final"' in t.caption


def test_mixed_revisions_get_a_row_each_labelled():
    rows = [row("fft", -4, None, -4.0, 0.5), row("fft", -4, None, 1.5, 0.4, revision="first"),
            row("unet", -4, 0, 7.0, 0.2), row("unet", -4, 1, 7.2, 0.2)]
    t, = report.build_tables(rows)
    assert [r.label for r in t.rows] == ["FFT [paper]", "FFT [first]", "U-Net [paper]"]
    assert [r.cells["snr_db"][0].text() for r in t.rows] == ["-4.0000", "1.5000", "7.1000 ± 0.1414"]
    assert "revisions paper + first" in t.title
    assert 'FFT [paper], U-Net [paper]: "paper"' in t.caption and 'FFT [first]: "first"' in t.caption


def test_notes_say_why_cells_and_rows_are_empty():
    # a smoke-like run: emb only, one SNR level, two networks and FFT; U-Net also at -4 dB for one seed
    rows = [row("fft", 0, None, 1.0, 0.3), row("unet", 0, 0, 5.0, 0.2), row("dancer", 0, 0, 6.0, 0.1),
            row("unet", -4, 0, 3.0, 0.3)]
    t, = report.build_tables(rows)
    assert "Columns without numbers (-2, 2, 4 dB): these results scored only input SNR -4, 0 dB" in t.note
    assert "FFT at -4 dB; DANCER at -4 dB" in t.note
    assert "Rows without results (not run, or not in the results files read): DWT, DACNN, ACDAE, " \
           "AGS-UNet, CIADNet." in t.note
    assert "No tables for bw, ma, em" in t.note
    md, html = report.render_markdown([t]), report.render_html([t])
    assert "*Note:* Columns without numbers" in md and '<p class="note">Note: Columns without numbers' in html
    full = [row("fft", s, None, 1.0, 0.3, noise=n) for n in ("emb", "bw", "ma", "em") for s in (-4, -2, 0, 2, 4)]
    assert all("Columns" not in x.note and "No tables" not in x.note for x in report.build_tables(full))


PUBLISHED = {
    "_about": "hand-made",
    "emb": {"FFT": {"snr": [1.5, 3.5, 5.5, 7.5, 9.5], "rmse": [0.4, 0.3, 0.25, 0.2, 0.15]},
            "U-Net (A README)": {"snr": [7.0, 8.0, 9.0, 10.0, 11.0], "snr_std": [0.1, 0.1, 0.1, 0.1, 0.1],
                                 "rmse": [0.2, 0.19, 0.18, 0.17, 0.16]},
            "DACNN": {"snr": [7.8, 8.6, 9.6, 10.5, 11.4]}},
    "ablation_emb": {"Baseline (U-Net)": {"snr": [6.9, 7.7, 8.6, 9.6, 10.5]}},
}


def compare_rows():
    return [row("fft", -4, None, 1.4567, 0.41, revision="first"), row("fft", -4, None, -4.0, 0.9),
            row("unet", -4, 0, 7.1, 0.2), row("unet", -4, 1, 7.3, 0.2), row("unet", 0, 0, 9.25, 0.17),
            row("ciadnet_base", -4, 0, 7.0, 0.2)]


def test_compare_published_rows_and_differences(tmp_path):
    path = tmp_path / "published.json"
    path.write_text(json.dumps(PUBLISHED))
    published = report.load_published(str(path))
    assert {(p.kind, p.method, p.source, p.revision) for p in published} == {
        ("main", "fft", "", "first"), ("main", "unet", "A README", "paper"), ("main", "dacnn", "", "paper"),
        ("ablation", "ciadnet_base", "", "paper")}
    main, ablation = report.build_tables(compare_rows(), published=published)
    fft_paper, fft_first, unet = main.rows
    assert fft_first.label == "FFT [first]"
    (pub_label, pub), (diff_label, diff) = fft_first.comparisons
    assert pub_label == "↳ published [revision first]" and pub["snr_db"] == ["1.5000", "3.5000", "5.5000",
                                                                            "7.5000", "9.5000"]
    assert diff_label == "↳ Δ ours − published" and diff["snr_db"][0] == "-0.0433"  # 1.4567 - 1.5
    assert diff["rmse"][:2] == ["+0.0100", "—"]
    assert "protocols differ: revision: ours paper, published first" in fft_paper.comparisons[1][0]
    assert fft_paper.comparisons[1][1]["snr_db"][0] == "-5.5000"
    (pub_label, pub), (_, diff) = unet.comparisons
    assert pub_label == "↳ published (A README) [revision paper]" and pub["snr_db"][0] == "7.0000 ± 0.1000"
    assert diff["snr_db"] == ["+0.2000", "—", "+0.2500", "—", "—"] and diff["rmse"][2] == "-0.0100"
    assert "Published rows without a result of ours here: DACNN." in main.comparison_note
    assert ablation.rows[0].comparisons[1][1]["snr_db"][0] == "+0.1000"
    md = report.render_markdown([main])
    assert "| ↳ published (A README) [revision paper] | 7.0000 ± 0.1000 | 8.0000 ± 0.1000 |" in md
    assert "| ↳ Δ ours − published | +0.2000 | — | +0.2500 | — | — |" in md
    assert '<tr class="published"><td>↳ Δ ours − published</td><td>+0.2000</td>' in report.render_html([main])
    # without published numbers nothing is added
    assert all(not r.comparisons for t in report.build_tables(compare_rows()) for r in t.rows)


def test_load_published_errors(tmp_path):
    with pytest.raises(ConfigError, match="no published numbers at"):
        report.load_published(str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text(json.dumps({"emb": {"FFT": {"snr": [1.0, 2.0]}}}))
    with pytest.raises(ConfigError, match="not a published-numbers file"):
        report.load_published(str(tmp_path / "bad.json"))


def test_shared_published_file_parses(published_json):
    published = report.load_published(str(published_json))
    methods = {(p.kind, p.method) for p in published}
    assert {("main", m) for m in ("fft", "dwt", "unet", "dacnn", "acdae", "dancer", "ciadnet", "ags_unet")} <= methods
    assert {("ablation", m) for m in ("ciadnet_base", "ciadnet_channel", "ciadnet_spatial", "ciadnet")} <= methods
    assert {p.revision for p in published if p.method in ("fft", "dwt") and p.kind in ("main", "ablation")} \
        == {"first"}
    final = {(p.kind, p.method) for p in published if p.revision == "final"}
    assert ("final_emb", "ralenet") in final and ("final_ablation", "dance_final_arem") in final
    assert ("final_by_noise", "dwt") in final and ("final_components", "dance_final_cbam") in final


def test_make_tables_compare_cli(tmp_path):
    res, out = tmp_path / "res", tmp_path / "out"
    append_rows(str(res / "results.jsonl"), compare_rows())
    (tmp_path / "published.json").write_text(json.dumps(PUBLISHED))
    proc = subprocess.run([sys.executable, "scripts/make_tables.py", f"--results={res}", f"--out={out}",
                           "--compare=published", f"--published={tmp_path / 'published.json'}"],
                          cwd=REPO, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "| ↳ Δ ours − published | +0.2000 | — | +0.2500 | — | — |" in proc.stdout
    assert "↳ published (A README) [revision paper]" in (out / "tables.md").read_text()
    assert "↳ published (A README) [revision paper]" in (out / "tables.html").read_text()
    missing = subprocess.run([sys.executable, "scripts/make_tables.py", f"--results={res}", f"--out={out}",
                              "--compare=published", f"--published={tmp_path / 'nope.json'}"],
                             cwd=REPO, capture_output=True, text=True, timeout=180)
    assert missing.returncode == 2 and missing.stderr.strip().startswith("error: no published numbers at")
    assert len(missing.stderr.strip().splitlines()) == 1
