"""Metrics against hand-computed numbers."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ecg_jax.metrics import METRIC_NAMES, mean_metrics, snr_db, to_floats, window_metrics

# Window A (L=2 samples, C=2 leads), signal in both leads, error only in lead 2:
#   clean    = [[3, 0], [0, 4]]   sum(c^2) = 9 + 16 = 25
#   denoised = [[3, 1], [0, 4]]   error = [[0, -1], [0, 0]] -> SSD = 1
#   noisy    = [[3, 2], [0, 4]]   input error SSD = 4
#   RMSE = sqrt(1 / 4) = 0.5;  SNR = 10 log10(25 / 1) = 13.97940
#   input SNR = 10 log10(25 / 4) = 7.95880 -> improvement = 10 log10(4) = 6.02060
#   PRD = 100 sqrt(1 / 25) = 20;  MAD = 1
#   cosine = (9 + 16) / (5 * sqrt(9 + 1 + 16)) = 5 / sqrt(26) = 0.980581
# (Scoring each lead on its own would give lead 1 an infinite SNR: the protocol
# pools both leads, which is what these numbers check.)
CLEAN_A = [[3.0, 0.0], [0.0, 4.0]]
DENOISED_A = [[3.0, 1.0], [0.0, 4.0]]
NOISY_A = [[3.0, 2.0], [0.0, 4.0]]
EXPECTED_A = {"rmse": 0.5, "snr_db": 13.979400, "snr_improvement_db": 6.020600, "prd": 20.0,
              "ssd": 1.0, "mad": 1.0, "cosine": 0.9805807}

# Window B: clean all ones (sum 4), denoised all zeros, noisy all twos:
#   SSD = 4, RMSE = 1, SNR = 10 log10(4/4) = 0, input SNR = 0 -> improvement 0,
#   PRD = 100, MAD = 1, cosine = 0 (zero output vector).
CLEAN_B = [[1.0, 1.0], [1.0, 1.0]]
DENOISED_B = [[0.0, 0.0], [0.0, 0.0]]
NOISY_B = [[2.0, 2.0], [2.0, 2.0]]
EXPECTED_B = {"rmse": 1.0, "snr_db": 0.0, "snr_improvement_db": 0.0, "prd": 100.0,
              "ssd": 4.0, "mad": 1.0, "cosine": 0.0}


def batch():
    return (np.array([CLEAN_A, CLEAN_B]), np.array([DENOISED_A, DENOISED_B]),
            np.array([NOISY_A, NOISY_B]))


def test_metric_names_and_shapes():
    m = window_metrics(*batch())
    assert tuple(m) == METRIC_NAMES
    assert all(v.shape == (2,) for v in m.values())


@pytest.mark.parametrize("name", METRIC_NAMES)
def test_hand_computed_two_lead_windows(name):
    m = window_metrics(*batch())
    np.testing.assert_allclose(float(m[name][0]), EXPECTED_A[name], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(m[name][1]), EXPECTED_B[name], rtol=1e-5, atol=1e-6)


def test_mean_metrics_is_mean_over_windows():
    m = to_floats(mean_metrics(*batch()))
    assert m["snr_db"] == pytest.approx((13.979400 + 0.0) / 2, rel=1e-5)
    assert m["rmse"] == pytest.approx(0.75, rel=1e-6)
    assert m["prd"] == pytest.approx(60.0, rel=1e-6)
    assert list(m) == list(METRIC_NAMES)


def test_batch_independence():
    clean, den, noisy = batch()
    together = window_metrics(clean, den, noisy)
    rng = np.random.default_rng(0)
    other = [x + rng.normal(size=x.shape) for x in (clean, den, noisy)]
    # Window A scored next to a different second window gives the same numbers.
    mixed = window_metrics(*[np.stack([x[0], o[1]]) for x, o in zip((clean, den, noisy), other, strict=True)])
    alone = window_metrics(clean[:1], den[:1], noisy[:1])
    for k in METRIC_NAMES:
        assert float(mixed[k][0]) == pytest.approx(float(together[k][0]), rel=1e-6)
        assert float(alone[k][0]) == pytest.approx(float(together[k][0]), rel=1e-6)


def test_jit_and_vmap_over_members():
    clean, den, noisy = batch()
    den2 = den * 0.5
    stacked = jax.jit(jax.vmap(mean_metrics))(np.stack([clean, clean]), np.stack([den, den2]),
                                              np.stack([noisy, noisy]))
    for k in METRIC_NAMES:
        assert stacked[k].shape == (2,)
        np.testing.assert_allclose(stacked[k][0], mean_metrics(clean, den, noisy)[k], rtol=1e-6)
        np.testing.assert_allclose(stacked[k][1], mean_metrics(clean, den2, noisy)[k], rtol=1e-6)
    # Leading axes also work without vmap: (M, B, L, C) -> (M, B).
    direct = window_metrics(np.stack([clean, clean]), np.stack([den, den2]), np.stack([noisy, noisy]))
    assert direct["snr_db"].shape == (2, 2)


def test_zero_clean_window_is_finite_and_documented():
    zero = jnp.zeros((1, 4, 2))
    both_zero = window_metrics(zero, zero, zero)
    assert float(both_zero["snr_db"][0]) == 0.0 and float(both_zero["prd"][0]) == 0.0
    assert float(both_zero["cosine"][0]) == 0.0
    wrong = window_metrics(zero, zero + 1.0, zero)  # SSD = 8
    expected = 10 * (math.log10(float(jnp.finfo(jnp.float32).tiny)) - math.log10(8.0))
    assert float(wrong["snr_db"][0]) == pytest.approx(expected, rel=1e-4)  # about -389 dB
    assert all(np.isfinite(float(v[0])) for v in wrong.values())


def test_perfect_reconstruction_is_finite_and_nan_propagates():
    clean = jnp.array([CLEAN_A])
    perfect = window_metrics(clean, clean, clean)
    assert np.isfinite(float(perfect["snr_db"][0])) and float(perfect["snr_db"][0]) > 300
    assert float(perfect["rmse"][0]) == 0.0
    broken = window_metrics(clean, clean * jnp.nan, clean)
    assert math.isnan(float(broken["snr_db"][0])) and math.isnan(float(broken["rmse"][0]))


def test_snr_db_formula():
    # sum(c^2) = 1 + 9 = 10, error^2 = 0.01 + 0.09 = 0.1 -> 10 log10(100) = 20 dB
    c = np.array([[[1.0], [3.0]]])
    assert float(snr_db(c, c * 0.9)[0]) == pytest.approx(20.0, rel=1e-6)
