"""FFT and DWT baselines and the threshold search."""

import math

import numpy as np
import pytest
import pywt

from ecg_jax.baselines import (
    BASELINES,
    dwt_denoise,
    fft_denoise,
    score_baseline,
    search_threshold,
    soft_threshold_signed_max,
)
from ecg_jax.errors import ConfigError
from ecg_jax.metrics import METRIC_NAMES

L = 256
n = np.arange(L)
BIG = np.sin(2 * np.pi * 5 * n / L)           # |FFT| = 128 at bins 5 and 251
SMALL = 0.001 * np.sin(2 * np.pi * 40 * n / L)  # |FFT| = 0.128 at bins 40 and 216


def windows(rng, b=4, length=L):
    return rng.normal(size=(b, length, 2))


def test_registry():
    assert BASELINES["fft"].display_name == "FFT" and BASELINES["dwt"].display_name == "DWT"
    assert BASELINES["fft"].default_threshold == 0.0012 and BASELINES["dwt"].default_threshold == 0.074


def test_fft_threshold_zero_is_identity():
    x = windows(np.random.default_rng(0))
    np.testing.assert_allclose(fft_denoise(x, 0.0), x, atol=1e-5)


def test_fft_removes_small_sinusoid_keeps_large():
    # 0.128 < 0.0012 * 128 = 0.1536: the small tone is zeroed, the big one kept.
    x = np.stack([BIG + SMALL, 2 * BIG + SMALL], axis=-1)[None]   # (1, L, 2)
    out = fft_denoise(x)
    np.testing.assert_allclose(out[0, :, 0], BIG, atol=1e-9)
    np.testing.assert_allclose(out[0, :, 1], 2 * BIG, atol=1e-9)
    # Each lead uses its own maximum: lead 2's max is 256, threshold 0.307 > 0.128 too,
    # but a lone small tone in a lead of its own is that lead's maximum and survives.
    y = np.stack([BIG, SMALL], axis=-1)[None]
    np.testing.assert_allclose(fft_denoise(y)[0, :, 1], SMALL, atol=1e-12)


def test_soft_threshold_matches_pywt_including_negative_max():
    rng = np.random.default_rng(1)
    positive = rng.normal(size=(3, 30, 2))
    negative = -np.abs(rng.normal(size=(3, 30, 2))) - 0.1   # every coefficient < 0: max < 0
    for coeffs in (positive, negative):
        ours = soft_threshold_signed_max(coeffs, 0.074, axis=1)
        for b in range(3):
            for c in range(2):
                d = coeffs[b, :, c]
                ref = pywt.threshold(d, 0.074 * np.max(d), mode="soft")
                np.testing.assert_allclose(ours[b, :, c], ref, rtol=1e-12)
    # Hand case with a negative max: d = [-3, -1], value = 0.5 * (-1) = -0.5;
    # pywt's factor 1 - value/|d| = 1 + 0.5/|d| moves each value 0.5 away from zero.
    np.testing.assert_allclose(soft_threshold_signed_max(np.array([[-3.0, -1.0]]), 0.5),
                               [[-3.5, -1.5]])
    # Positive max: d = [4, -1, 0.5], value = 0.5 * 4 = 2 -> [2, 0, 0].
    np.testing.assert_allclose(soft_threshold_signed_max(np.array([[4.0, -1.0, 0.5]]), 0.5),
                               [[2.0, 0.0, 0.0]])
    # d = [0, -2]: the max is 0, so value = 0 and nothing changes; pywt returns NaN
    # for the exact zero (0/0), we return 0.
    with np.errstate(divide="ignore", invalid="ignore"):
        assert np.isnan(pywt.threshold(np.array([0.0, -2.0]), 0.0, mode="soft")[0])
    np.testing.assert_array_equal(soft_threshold_signed_max(np.array([[0.0, -2.0]]), 0.5),
                                  [[0.0, -2.0]])


def test_dwt_on_known_haar_signal():
    # Haar, one level, x = [3, 1]: A = 4/sqrt2, D = 2/sqrt2 = sqrt2 (the level max).
    # threshold 0.5 -> value sqrt2/2, D' = sqrt2/2 -> x' = [2 + 0.5, 2 - 0.5] = [2.5, 1.5].
    x = np.array([[[3.0], [1.0]]])
    np.testing.assert_allclose(dwt_denoise(x, 0.5, wavelet="haar")[0, :, 0], [2.5, 1.5], atol=1e-12)
    # x = [1, 3]: D = -sqrt2 is the (negative) max, value = -sqrt2/2, D' = -1.5 sqrt2
    # -> x' = [2 - 1.5, 2 + 1.5] = [0.5, 3.5]: the reference's quirk amplifies the detail.
    x = np.array([[[1.0], [3.0]]])
    np.testing.assert_allclose(dwt_denoise(x, 0.5, wavelet="haar")[0, :, 0], [0.5, 3.5], atol=1e-12)


def test_dwt_matches_per_window_pywt_reference_loop():
    x = windows(np.random.default_rng(2), b=3)
    level = pywt.dwt_max_level(L, "db8")
    assert level == 4
    expected = np.empty_like(x)
    for b in range(x.shape[0]):
        for c in range(x.shape[2]):
            co = pywt.wavedec(x[b, :, c], "db8", level=level)
            co = [co[0]] + [pywt.threshold(d, 0.074 * np.max(d), mode="soft") for d in co[1:]]
            expected[b, :, c] = pywt.waverec(co, "db8")[:L]
    np.testing.assert_allclose(dwt_denoise(x), expected, atol=1e-12)


@pytest.mark.parametrize("length", [256, 250, 129])
def test_dwt_shape_dtype_and_determinism(length):
    x = windows(np.random.default_rng(3), b=2, length=length).astype(np.float32)
    a, b = dwt_denoise(x), dwt_denoise(x)
    assert a.shape == x.shape and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(fft_denoise(x), fft_denoise(x))


def test_zero_window_stays_zero():
    z = np.zeros((1, L, 2))
    np.testing.assert_array_equal(dwt_denoise(z), z)
    np.testing.assert_array_equal(fft_denoise(z), z)


def test_score_baseline_returns_floats():
    clean = np.stack([BIG, BIG], axis=-1)[None]
    noisy = clean + np.stack([SMALL, SMALL], axis=-1)[None]
    scores = score_baseline("fft", clean, noisy)
    assert list(scores) == list(METRIC_NAMES) and all(isinstance(v, float) for v in scores.values())
    assert scores["snr_db"] > 100  # the small tone is removed exactly
    with pytest.raises(ConfigError):
        score_baseline("wiener", clean, noisy)


def test_search_uses_only_the_windows_it_is_given():
    rng = np.random.default_rng(4)
    big = BIG[None, :, None] * rng.uniform(1, 2, size=(6, 1, 2))
    tone = 0.01 * np.sin(2 * np.pi * 40 * n / L)[None, :, None]
    # Training windows: the small tone is noise -> removing it (threshold 0.05) is best.
    train_clean, train_noisy = big, big + tone
    # "Test" windows: the tone is part of the clean signal -> keeping all (0.0) is best.
    test_clean, test_noisy = big + tone, big + tone
    grid = (0.0, 0.05)
    assert search_threshold("fft", train_clean, train_noisy, grid) == 0.05
    assert search_threshold("fft", test_clean, test_noisy, grid) == 0.0
    # Default grid includes the reference value; the chosen threshold is a grid value.
    t = search_threshold("dwt", train_clean[:2], train_noisy[:2])
    assert t in BASELINES["dwt"].threshold_grid and not math.isnan(t)
