"""The final revision's four tables (ecg_jax/report/final.py), against hand-computed cells."""

import os
import subprocess
import sys

from ecg_jax import report
from ecg_jax.metrics import METRIC_NAMES
from ecg_jax.results import append_rows, make_row

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def row(method, noise, snr_in, seed, snr, rmse, revision="final"):
    m = {k: 0.5 for k in METRIC_NAMES}
    m.update(snr_db=snr, rmse=rmse)
    return make_row(method=method, noise_type=noise, snr_db=snr_in, seed=seed, split="inter_patient",
                    source="physionet", metrics=m, revision=revision, epochs=80)


def grid_rows():
    rows = [row("dwt", nt, -4, None, 1.0, 0.44) for nt in ("bw", "em", "ma", "emb")]
    rows += [row("unet", nt, -4, 42, 5.0 + i, 0.3) for i, nt in enumerate(("bw", "em", "ma", "emb"))]
    rows += [row("unet", "emb", lv, 42, 6.0 + lv, 0.25) for lv in (-2, 0, 2, 4)]
    rows += [row("dance_final", "emb", lv, 42, 7.0 + lv, 0.2) for lv in (-4, -2, 0, 2, 4)]
    rows += [row("dance_final", "bw", -4, 42, 8.5, 0.2)]
    rows += [row("dance_final_se", "emb", -4, 42, 6.5, 0.24), row("dance_final_arem", "emb", -4, 42, 5.5, 0.27),
             row("dance_final_arem", "emb", -4, 43, 5.7, 0.29)]
    return rows


def by_kind(ts):
    return {t.kind: t for t in ts}


def test_four_tables_in_the_readme_layout():
    ts = by_kind(report.build_tables(grid_rows()))
    assert list(ts) == ["final_by_noise", "final_emb", "final_components", "final_ablation"]
    by_noise = ts["final_by_noise"]
    assert by_noise.column_labels == ("bw", "em", "ma", "emb")
    assert [r.label for r in by_noise.rows] == ["DWT", "U-Net", "DANCE"]
    unet = by_noise.rows[1]
    # U-Net at -4 dB: bw 5, em 6, ma 7, emb 8 (one run each, shown with n=1)
    assert [c.text() for c in unet.cells["snr_db"]] == ["5.0000 (n=1)", "6.0000 (n=1)", "7.0000 (n=1)",
                                                         "8.0000 (n=1)"]
    dance = by_noise.rows[2]
    assert [c.text() for c in dance.cells["snr_db"]] == ["8.5000 (n=1)", "—", "—", "3.0000 (n=1)"]
    assert dance.cells["snr_db"][0].bold and unet.cells["snr_db"][3].bold  # best per column
    assert "DANCE at em, ma" in by_noise.note and "DRSN" in by_noise.note
    emb = ts["final_emb"]
    assert [r.label for r in emb.rows] == ["DWT", "U-Net", "DANCE"]
    assert emb.rows[1].cells["snr_db"][0].text() == "8.0000 (n=1)" and emb.rows[1].cells["snr_db"][4].text() \
        == "10.0000 (n=1)"
    assert "Rows without results: EMD, DRSN, DACNN\u2020, ACDAE, RALENet" in emb.note   # \u2020: provenance mark
    comp = ts["final_components"]
    assert [r.label for r in comp.rows] == ["U-Net", "+ ATNC & SE\u2021", "+ ATNC & AREM (DANCE)"]
    abl = ts["final_ablation"]
    assert [r.label for r in abl.rows] == ["Baseline (U-Net)", "+ AREM\u2021", "+ ATNC & AREM"]
    arem = abl.rows[1].cells["snr_db"][0]
    assert arem.text() == "5.6000 ± 0.1414"  # two seeds: mean 5.6, sample std 0.1/sqrt(0.5)
    assert "+ ATNC" in abl.note and "+ AREM\u2021 at -2, 0, 2, 4 dB" in abl.note


def test_published_final_cells_and_differences(published_json):
    published = report.load_published(str(published_json))
    ts = by_kind(report.build_tables(grid_rows(), published=published))
    unet = next(r for r in ts["final_by_noise"].rows if r.method == "unet")
    (pub_label, shown), (diff_label, diff) = unet.comparisons
    # published.json final by_noise_at_-4, U-Net: SNR bw 6.89, em 6.33, ma 5.73, emb 5.33
    assert shown["snr_db"] == ["6.8900", "6.3300", "5.7300", "5.3300"]
    assert diff["snr_db"] == ["-1.8900", "-0.3300", "+1.2700", "+2.6700"]
    assert shown["rmse"][0] == "0.2393"
    dance = next(r for r in ts["final_components"].rows if r.method == "dance_final")
    # components "+ ATNC & AREM (DANCE)": 6.56, 7.41, 7.94, 8.87, 9.64; ours 3, 5, 7, 9, 11
    assert dance.comparisons[0][1]["snr_db"] == ["6.5600", "7.4100", "7.9400", "8.8700", "9.6400"]
    assert dance.comparisons[1][1]["snr_db"] == ["-3.5600", "-2.4100", "-0.9400", "+0.1300", "+1.3600"]
    arem = next(r for r in ts["final_ablation"].rows if r.method == "dance_final_arem")
    assert arem.comparisons[0][1]["snr_db"][0] == "5.4900"
    assert "Published rows without a result of ours here: ACDAE, DACNN, DRSN, EMD, RALENet" in \
        ts["final_emb"].comparison_note
    # the paper-era comparisons are untouched by the final section
    paper_rows = [p for p in published if p.revision != "final"]
    assert paper_rows and all(p.kind in ("main", "ablation") for p in paper_rows)


def test_final_rows_never_mix_with_paper_tables():
    rows = grid_rows() + [row("unet", "emb", -4, 0, 7.3, 0.2, revision="paper")]
    ts = report.build_tables(rows)
    paper = [t for t in ts if t.kind == "main"]
    assert len(paper) == 1 and [r.revision for r in paper[0].rows] == ["paper"]


def test_make_tables_compare_published_renders_the_final_tables(tmp_path, published_json):
    results = tmp_path / "r"
    results.mkdir()
    append_rows(str(results / "results.jsonl"), grid_rows())
    out = tmp_path / "t"
    proc = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "make_tables.py"),
                           f"--results={results}", f"--out={out}", "--compare=published",
                           f"--published={published_json}"], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    md = (out / "tables.md").read_text()
    assert "| Method | SNR(dB) bw | SNR(dB) em | SNR(dB) ma | SNR(dB) emb | RMSE bw |" in md
    assert "Final revision, components" in md and "Final revision, ablation" in md
    assert "| ↳ published (final README, one run) [revision final] | 6.8900 | 6.3300 | 5.7300 | 5.3300 |" in md
    html = (out / "tables.html").read_text()
    assert "<th>bw</th>" in html
