"""The denoise benchmark's R-peak F1 and mains cells (ecg_jax/denoise/benchmark.py).

Peak matching on hand-made lists (every number worked out by hand), the F1
summary and its goal, the beat annotations against the raw .atr file, and
the real CLI on one short stretch: mains cells and F1 rows present.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import wfdb

from ecg_jax.denoise import benchmark as bench


def test_match_peaks_by_hand():
    # 3 true beats; detections: 105 (5 from 100), 290 (10 from 300), 700 (nothing near): 2 matched, 1 false.
    counts = bench.match_peaks([100, 300, 500], [105, 290, 700], tolerance=54)
    assert counts == {"tp": 2, "fp": 1, "fn": 1}
    scores = bench.f1_scores(counts)
    assert scores["precision"] == pytest.approx(2 / 3) and scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 / 3)        # 2 tp / (2 tp + fp + fn) = 4 / 6
    # 150 ms at 360 Hz is 54 samples: 54 away matches, 55 away does not.
    assert bench.peak_f1([1000], [1054])["tp"] == 1
    assert bench.peak_f1([1000], [1055]) == {"tp": 0, "fp": 1, "fn": 1, "precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_match_peaks_is_one_to_one_closest_first():
    # Two detections near one beat: only one counts, the other is a false positive.
    assert bench.match_peaks([100], [90, 103], tolerance=54) == {"tp": 1, "fp": 1, "fn": 0}
    # One detection between two beats: it takes the closer (130 -> 150), the beat at 100 is missed.
    assert bench.match_peaks([100, 150], [130], tolerance=54) == {"tp": 1, "fp": 0, "fn": 1}
    # Closest first leaves 100 for 60 (40 away) after 140 took 150 (10 away): both matched.
    assert bench.match_peaks([100, 150], [60, 140], tolerance=54) == {"tp": 2, "fp": 0, "fn": 0}
    assert bench.match_peaks([], [], tolerance=54) == {"tp": 0, "fp": 0, "fn": 0}
    assert bench.f1_scores({"tp": 0, "fp": 0, "fn": 0})["f1"] == 1.0
    assert bench.match_peaks([1, 2], [], tolerance=54) == {"tp": 0, "fp": 0, "fn": 2}


def test_f1_summary_pools_counts_and_lists_misses():
    def c(tp, fp, fn):
        return {"tp": tp, "fp": fp, "fn": fn}
    peaks = {"net": {"mains50": {0.0: [c(9, 1, 1), c(10, 0, 0)]}},
             "filt": {"mains50": {0.0: [c(10, 0, 0), c(10, 0, 0)]}},
             bench.NOISY: {"mains50": {0.0: [c(0, 0, 10), c(0, 0, 10)]}}}
    (row,) = bench.summarize_f1(peaks, [c(10, 0, 0), c(10, 0, 0)], ["net"], ["filt"])
    net = row["methods"]["net"]
    assert (net["tp"], net["fp"], net["fn"]) == (19, 1, 1)
    assert net["f1"] == pytest.approx(38 / 40)                        # 2*19 / (2*19 + 1 + 1)
    assert net["mean_stretch_f1"] == pytest.approx((18 / 20 + 1.0) / 2)
    assert row["methods"][bench.NOISY]["f1"] == 0.0 and row["methods"][bench.CLEAN]["f1"] == 1.0
    assert row["best_filter"] == "filt" and row["margins"]["net"] == pytest.approx(-0.05)
    (miss,) = bench.f1_misses([row], "net")
    assert miss["noise_type"] == "mains50" and miss["short_by"] == pytest.approx(0.05)
    table = bench.markdown_f1([row], ["net"], ["filt"], 2)
    assert "| mains50, 0 dB | 95.0 | **100.0** | 0.0 | 100.0 | -5.0 |" in table


def test_cells_and_mains_noise_of_a_stretch():
    cells = bench.cells_of(["emb"], [0.0, 4.0], ["mains50", "mains60"], [0.0, -6.0])
    assert cells == [("emb", 0.0), ("emb", 4.0), ("mains50", 0.0), ("mains50", -6.0),
                     ("mains60", 0.0), ("mains60", -6.0)]
    a = bench.noise_of({}, "mains60", 12345, 3600)
    np.testing.assert_array_equal(a, bench.noise_of({}, "mains60", 12345, 3600))   # same stretch, same noise
    assert not np.allclose(a, bench.noise_of({}, "mains60", 12346, 3600))
    spectrum = np.abs(np.fft.rfft(a[:, 0])) ** 2
    assert abs(np.fft.rfftfreq(3600, 1 / 360.0)[np.argmax(spectrum)] - 60.0) < 0.5


def test_beat_annotations_keep_beats_only(shared_data_dir):
    beats = bench.beat_annotations(str(shared_data_dir), "100")
    ann = wfdb.rdann(str(shared_data_dir / "mitdb" / "100"), "atr")
    symbols = np.asarray(ann.symbol)
    assert "+" in set(symbols)                                   # record 100 has rhythm annotations ...
    assert len(beats) == np.isin(symbols, list(bench.BEAT_SYMBOLS)).sum() < len(symbols)   # ... left out
    assert len(beats) == 2273                                    # MIT-BIH's count of beats in record 100
    assert np.all(np.diff(beats) > 0)


def test_cli_has_mains_cells_and_f1_rows(shared_data_dir, tmp_path):
    pytest.importorskip("neurokit2")
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "ecg_jax", "benchmark-denoise", "--data_dir", str(shared_data_dir),
                           "--records", "100", "--per_record", "1", "--seconds", "10", "--noise_types", "emb",
                           "--snr_levels", "0", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    for cell in ("| emb, 0 dB |", "| mains50, 0 dB |", "| mains50, -6 dB |", "| mains60, 0 dB |",
                 "| mains60, -6 dB |"):
        assert proc.stdout.count(cell) == 3, cell                # raw, demeaned and F1 tables
    assert "R-peak F1" in proc.stdout
    result = json.loads(out.read_text())
    assert [(r["noise_type"], r["snr_db"]) for r in result["f1_rows"]] == [
        ("emb", 0.0), ("mains50", 0.0), ("mains50", -6.0), ("mains60", 0.0), ("mains60", -6.0)]
    assert len(result["rows"]) == 10
    row = result["f1_rows"][0]
    assert {"shipped DANCER", "Butterworth 0.5-40 Hz", bench.NOISY, bench.CLEAN} <= set(row["methods"])
    # 10 s of record 100 hold about 12 beats; the clean stretch finds them.
    assert row["methods"][bench.CLEAN]["tp"] >= 10 and row["methods"][bench.CLEAN]["f1"] > 0.9
    assert set(result["f1_misses"]) == {"shipped DANCER"} and set(result["misses"]) == {"shipped DANCER"}


def test_f1_is_optional_with_one_line(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_neurokit(name, *args, **kwargs):
        if name == "neurokit2":
            raise ImportError("No module named 'neurokit2'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_neurokit)
    detector, why = bench.r_peak_detector()
    assert detector is None and "pip install neurokit2" in why and "\n" not in why
    result = {"rows": [], "networks": [], "filters": [], "setup": {"n_stretches": 1}, "skipped": {},
              "misses": {}, "f1_rows": [], "f1_skipped": why, "f1_misses": {}}
    monkeypatch.setattr(bench, "markdown", lambda *a: "")
    assert bench.report(result).strip().splitlines()[-1] == why
