"""Tests of the built-in synthetic ECG/noise source (ecg_jax/synthetic.py)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from ecg_jax.data import synthetic
from ecg_jax.errors import ConfigError

FS = 360.0


def power_fraction(x: np.ndarray, fs: float, low: float, high: float) -> float:
    """Share of the (mean-removed) periodogram power of a 1-D signal in [low, high) Hz."""
    power = np.abs(np.fft.rfft(x - x.mean())) ** 2
    freqs = np.fft.rfftfreq(x.size, 1.0 / fs)
    return float(power[(freqs >= low) & (freqs < high)].sum() / power.sum())


def burstiness(x: np.ndarray, fs: float) -> float:
    """p90/p10 of the 1-s RMS of the part of x above 1 Hz (~1.2 for stationary noise)."""
    spectrum = np.fft.rfft(x)
    spectrum[np.fft.rfftfreq(x.size, 1.0 / fs) < 1.0] = 0
    fast = np.fft.irfft(spectrum, x.size)
    seconds = x.size // int(fs)
    rms = np.sqrt((fast[:seconds * int(fs)].reshape(seconds, int(fs)) ** 2).mean(axis=1))
    return float(np.percentile(rms, 90) / np.percentile(rms, 10))


def r_peak_times(lead: np.ndarray, fs: float) -> np.ndarray:
    """R peaks of a tall-R lead: local maxima above half the highest excursion."""
    x = lead - np.median(lead)
    peaks, _ = signal.find_peaks(x, height=0.5 * x.max(), distance=int(0.3 * fs))
    return peaks / fs


@pytest.fixture(scope="module")
def noise() -> dict[str, np.ndarray]:
    return synthetic.synthesize_noise_records(int(300 * FS), seed=5)  # 5 minutes


# ---------------------------------------------------------------- ECG

def test_ecg_records_shapes_names_and_dtype():
    records = synthetic.synthesize_ecg_records(3, 1000, seed=1)
    assert list(records) == ["syn000", "syn001", "syn002"]
    for x in records.values():
        assert x.shape == (1000, 2) and x.dtype == np.float32
        assert x.flags.c_contiguous and np.isfinite(x).all()
        assert 0.05 < np.abs(x).max() < 10.0  # mV scale, not normalised


def test_ecg_names_sort_in_index_order_beyond_999_records():
    names = list(synthetic.synthesize_ecg_records(1001, 4, seed=0))
    assert names[:2] == ["syn0000", "syn0001"] and names[-1] == "syn1000"
    assert names == sorted(names)


def test_ecg_is_deterministic_per_seed():
    a = synthetic.synthesize_ecg_records(2, 2000, seed=7)
    b = synthetic.synthesize_ecg_records(2, 2000, seed=7)
    c = synthetic.synthesize_ecg_records(2, 2000, seed=8)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
        assert not np.allclose(a[name], c[name])
    assert not np.allclose(a["syn000"], a["syn001"])  # records differ from each other


def test_record_k_does_not_depend_on_the_number_of_records():
    few = synthetic.synthesize_ecg_records(2, 3000, seed=3)
    many = synthetic.synthesize_ecg_records(5, 3000, seed=3)
    np.testing.assert_array_equal(few["syn001"], many["syn001"])
    np.testing.assert_array_equal(many["syn004"], synthetic.synthesize_ecg_record(4, 3000, seed=3))


def test_parameters_stay_in_their_ranges():
    for k in range(20):
        p = synthetic.ecg_record_parameters(0, k)
        assert 55.0 <= p.heart_rate_bpm <= 100.0
        assert p.second_lead in ("V1", "V2", "V5")
        r_wave, t_wave = p.amplitudes_mv[2, 0], p.amplitudes_mv[4, 0]
        assert r_wave > 2 * t_wave > 0  # lead 1 is MLII-like: tall R


@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_heart_rate_and_its_variability_match_the_parameters(index):
    params = synthetic.ecg_record_parameters(42, index)
    ecg = synthetic.synthesize_ecg_record(index, int(60 * FS), seed=42)
    rr = np.diff(r_peak_times(ecg[:, 0], FS))
    expected_rr = 60.0 / params.heart_rate_bpm
    # Every beat found: one per expected RR over the minute (+-2 at the edges).
    assert abs(rr.size + 1 - 60.0 / expected_rr) <= 2
    assert rr.mean() == pytest.approx(expected_rr, rel=0.03)
    cv = rr.std() / rr.mean()
    # Real HRV, not just the +-1/2-sample jitter of peak picking (cv ~0.2%).
    assert cv > 0.008
    assert 0.5 * params.rr_cv < cv < 1.5 * params.rr_cv


def test_rr_tachogram_has_configured_mean_and_spread():
    params = synthetic.ecg_record_parameters(11, 0)
    rr = synthetic._rr_tachogram(np.random.default_rng(0), params, int(512 * FS), FS)
    mean_rr = 60.0 / params.heart_rate_bpm
    assert rr.mean() == pytest.approx(mean_rr, rel=0.01)
    assert rr.std() / mean_rr == pytest.approx(params.rr_cv, rel=0.1)
    # Its spectrum has the LF (~0.1 Hz) and HF (~0.25 Hz) peaks, nothing else.
    assert power_fraction(rr, FS, 0.05, 0.35) > 0.97


def test_ecg_energy_is_mostly_below_40_hz():
    ecg = synthetic.synthesize_ecg_record(0, int(60 * FS), seed=9)
    for lead in range(2):
        assert power_fraction(ecg[:, lead], FS, 0.0, 40.0) > 0.95


def test_very_short_records_work():
    x = synthetic.synthesize_ecg_record(0, 1, seed=0)
    assert x.shape == (1, 2) and np.isfinite(x).all()
    noise = synthetic.synthesize_noise_records(1, seed=0)
    assert all(v.shape == (1, 2) and np.isfinite(v).all() for v in noise.values())


@pytest.mark.parametrize("kwargs", [dict(n_records=0, n_samples=10),
                                    dict(n_records=1, n_samples=0),
                                    dict(n_records=1, n_samples=10, seed=-1),
                                    dict(n_records=1, n_samples=10, fs=0.0)])
def test_bad_arguments_raise_config_error(kwargs):
    with pytest.raises(ConfigError):
        synthetic.synthesize_ecg_records(**kwargs)


# ---------------------------------------------------------------- noise

def test_noise_records_shapes_dtype_and_rms(noise):
    assert list(noise) == ["bw", "em", "ma"]
    for name, x in noise.items():
        assert x.shape == (int(300 * FS), 2) and x.dtype == np.float32
        assert x.flags.c_contiguous and np.isfinite(x).all()
        # RMS per channel = the real NSTDB record's (hand-measured values).
        expected = {"bw": (0.47, 0.18), "em": (0.73, 0.21), "ma": (0.19, 0.19)}[name]
        np.testing.assert_allclose(np.sqrt((x.astype(np.float64) ** 2).mean(axis=0)),
                                   expected, rtol=1e-4)


def test_noise_is_deterministic_per_seed(noise):
    again = synthetic.synthesize_noise_records(int(300 * FS), seed=5)
    other = synthetic.synthesize_noise_records(int(300 * FS), seed=6)
    for name in noise:
        np.testing.assert_array_equal(noise[name], again[name])
        assert not np.allclose(noise[name], other[name])


def test_noise_channels_are_correlated_but_not_identical(noise):
    for name, x in noise.items():
        corr = np.corrcoef(x.T)[0, 1]
        target = synthetic.NOISE_CHANNEL_CORRELATION[name]
        assert abs(corr - target) < 0.25, (name, corr)
        assert abs(corr) < 0.95


def test_baseline_wander_is_below_1_hz(noise):
    for lead in range(2):
        assert power_fraction(noise["bw"][:, lead], FS, 0.0, 1.0) > 0.99


def test_muscle_artifact_is_mostly_above_5_hz(noise):
    for lead in range(2):
        assert power_fraction(noise["ma"][:, lead], FS, 5.0, FS / 2 + 1) > 0.6


def test_electrode_motion_overlaps_the_ecg_band_and_comes_in_bursts(noise):
    stationary = np.random.default_rng(0).standard_normal(int(300 * FS))
    assert burstiness(stationary, FS) < 1.5  # the measure itself can fail
    for lead in range(2):
        x = noise["em"][:, lead]
        assert burstiness(x, FS) > 3.0
        assert power_fraction(x, FS, 1.0, 40.0) > 0.2


def test_source_note_says_synthetic():
    assert "SYNTHETIC" in synthetic.SYNTHETIC_SOURCE_NOTE
    assert "\n" not in synthetic.SYNTHETIC_SOURCE_NOTE
