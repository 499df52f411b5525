"""The denoise benchmark (ecg_jax/denoise/benchmark.py, scripts/benchmark_denoise.py).

Scoring against hand-computed numbers, the Butterworth band-pass against what
a band-pass must do, and the script end to end on one stretch of real data,
its Butterworth number recomputed here independently from the raw files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import wfdb
from scipy.signal import butter, sosfiltfilt

from ecg_jax.denoise import benchmark as bench

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "scripts", "benchmark_denoise.py")

# Two leads, four samples; every number below is worked out by hand.
CLEAN = np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, 2.0]])   # sum^2 16; lead means 1, 1
NOISE = np.array([[1.0, 1.0], [1.0, 1.0], [-1.0, -1.0], [-1.0, -1.0]])  # sum^2 8; lead means 0


def test_snr_gain_raw_and_demeaned_by_hand():
    noisy = CLEAN + NOISE            # raw SNR 10 log10(16/8) = 3.0103 dB; demeaned 10 log10(8/8) = 0 dB
    output = CLEAN - 1.0 + 0.5 * NOISE
    # raw error -1 + 0.5 e: four samples of -0.5, four of -1.5 -> sum^2 = 1 + 9 = 10 -> SNR 10 log10(16/10)
    # demeaned error 0.5 e -> sum^2 2; demeaned clean sum^2 8 -> SNR 10 log10(4)
    gains = bench.snr_gains(CLEAN, noisy, output)
    assert gains["raw"] == pytest.approx(10 * np.log10(16 / 10) - 10 * np.log10(2), abs=1e-12)   # -0.9691
    assert gains["raw"] == pytest.approx(-0.96910013, abs=1e-8)
    assert gains["demeaned"] == pytest.approx(10 * np.log10(4), abs=1e-12)                      # +6.0206
    # A perfect copy of the noisy input gains nothing, in both measures.
    assert bench.snr_gains(CLEAN, noisy, noisy) == {"raw": 0.0, "demeaned": 0.0}


def test_mix_at_snr_scales_over_the_whole_stretch():
    # Pc = 16/8 = 2, Pn = 8/8 = 1: 0 dB needs scale sqrt(2); -3 dB needs sqrt(2 / 10**-0.3).
    np.testing.assert_allclose(bench.mix_at_snr(CLEAN, NOISE, 0.0), CLEAN + np.sqrt(2.0) * NOISE, rtol=1e-12)
    noisy = bench.mix_at_snr(CLEAN, NOISE, -3.0)
    np.testing.assert_allclose(noisy, CLEAN + np.sqrt(2.0 / 10 ** -0.3) * NOISE, rtol=1e-12)
    assert bench.snr_db(CLEAN, noisy) == pytest.approx(-3.0, abs=1e-9)


def test_butterworth_removes_a_slow_sine_and_keeps_a_qrs_band_sine():
    fs = 360.0
    t = np.arange(int(60 * fs)) / fs
    slow = np.stack([np.sin(2 * np.pi * 0.1 * t), 0.5 * np.cos(2 * np.pi * 0.1 * t)], axis=1)
    out = bench.butterworth(slow, fs)
    assert out.shape == slow.shape
    # 0.1 Hz is 2.3 octaves under the 0.5 Hz corner: order 4, applied twice, leaves < 1e-4 of the amplitude
    # (edges aside, where the zero-phase filter's padding decides).
    inner = slice(int(10 * fs), -int(10 * fs))
    assert np.max(np.abs(out[inner])) < 1e-3
    assert np.max(np.abs(out[inner])) / np.max(np.abs(slow)) < 1e-3
    fast = np.sin(2 * np.pi * 10.0 * t)[:, None]
    np.testing.assert_allclose(bench.butterworth(fast, fs)[inner], fast[inner], atol=1e-3)
    # Above the 40 Hz corner: 100 Hz is mostly gone.
    hum = np.sin(2 * np.pi * 100.0 * t)[:, None]
    assert np.max(np.abs(bench.butterworth(hum, fs)[inner])) < 0.01


def test_stretch_starts_and_noise_region_by_hand():
    assert bench.stretch_starts(100, 10, 3) == [15, 45, 75]       # free 90: (k + 0.5) * 30
    assert bench.stretch_starts(10, 10, 2) == [0, 0]
    assert bench.noise_region(650000) == (520000, 650000)         # the last fifth


def test_summary_margins_and_misses_by_hand():
    gains = {
        "net": {"bw": {0.0: {"raw": [5.0, 7.0], "demeaned": [9.0, 11.0]}}},
        "filter a": {"bw": {0.0: {"raw": [1.0, 1.0], "demeaned": [9.0, 10.0]}}},
        "filter b": {"bw": {0.0: {"raw": [2.0, 4.0], "demeaned": [8.0, 8.0]}}},
    }
    rows = bench.summarize(gains, ["net"], ["filter a", "filter b"])
    raw, dm = rows
    assert raw["methods"]["net"] == {"mean": 6.0, "std": pytest.approx(np.sqrt(2.0)), "n": 2}
    assert raw["best_filter"] == "filter b" and raw["margins"]["net"] == pytest.approx(3.0)
    assert dm["best_filter"] == "filter a" and dm["margins"]["net"] == pytest.approx(0.5)
    missed = bench.misses(rows, "net")
    assert missed == [{"noise_type": "bw", "snr_db": 0.0, "measure": "demeaned", "margin_db": 0.5,
                       "short_by_db": 0.5, "best_filter": "filter a"}]
    table = bench.markdown(rows, ["net"], ["filter a", "filter b"], 2)
    assert "| bw, 0 dB | **+6.0 ± 1.4** | +1.0 ± 0.0 | +3.0 ± 1.4 | +3.0 |" in table


def test_neurokit_is_optional_with_a_reason(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_neurokit(name, *args, **kwargs):
        if name == "neurokit2":
            raise ImportError("No module named 'neurokit2'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_neurokit)
    methods, skipped = bench.filter_methods()
    assert list(methods) == ["Butterworth 0.5-40 Hz"]
    assert set(skipped) == {"NeuroKit2 (neurokit)", "NeuroKit2 (biosppy)"}
    assert all("pip install neurokit2" in why for why in skipped.values())


def test_script_on_one_real_stretch(shared_data_dir, tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, SCRIPT, "--data_dir", str(shared_data_dir), "--records", "100",
                           "--per_record", "1", "--seconds", "10", "--noise_types", "emb",
                           "--snr_levels", "0", "--out", str(out)],
                          capture_output=True, text=True, timeout=900, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert "| emb, 0 dB |" in proc.stdout and "shipped DANCER" in proc.stdout
    result = json.loads(out.read_text())
    (stretch,) = result["setup"]["stretches"]
    assert stretch["record"] == "100" and stretch["start"] == int(0.5 * (650000 - 3600))
    assert 520000 <= stretch["noise_start"] <= 650000 - 3600

    # The Butterworth number, recomputed here from the raw files without the module.
    a, b = stretch["start"], stretch["noise_start"]
    clean = wfdb.rdrecord(str(shared_data_dir / "mitdb" / "100"), sampfrom=a, sampto=a + 3600).p_signal
    clean = clean.astype(np.float32).astype(np.float64)   # the loader's float32 mV
    noise = sum(wfdb.rdrecord(str(shared_data_dir / "nstdb" / k), sampfrom=b, sampto=b + 3600).p_signal
                .astype(np.float32).astype(np.float64) for k in ("bw", "em", "ma"))
    noisy = clean + np.sqrt(np.mean(clean ** 2) / np.mean(noise ** 2)) * noise
    filtered = sosfiltfilt(butter(4, (0.5, 40.0), btype="bandpass", fs=360.0, output="sos"), noisy, axis=0)
    def snr(c, x):
        return 10 * np.log10(np.sum(c ** 2) / np.sum((x - c) ** 2))
    def dm(x):
        return x - x.mean(axis=0)
    (row_raw, row_dm) = [r for r in result["rows"] if r["noise_type"] == "emb"]   # the mains cells follow
    butter_row = "Butterworth 0.5-40 Hz"
    assert row_raw["methods"][butter_row]["mean"] == pytest.approx(snr(clean, filtered) - snr(clean, noisy), abs=1e-6)
    assert row_dm["methods"][butter_row]["mean"] == pytest.approx(
        snr(dm(clean), dm(filtered)) - snr(dm(clean), dm(noisy)), abs=1e-6)
    # The shipped network beats a filter on this emb stretch, raw (the filters drop the DC level).
    assert row_raw["margins"]["shipped DANCER"] > 0
