"""Mains interference and DC steps (ecg_jax/data/mains.py): spectrum, RMS, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from ecg_jax.data import mains

FS = 360.0


def _spectrum(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    return np.fft.rfftfreq(len(x), 1 / FS), p


def _band_power(f, p, lo, hi):
    return p[(f >= lo) & (f <= hi)].sum()


@pytest.mark.parametrize("f0, kept", [(50.0, [1, 2, 3]), (60.0, [1, 2])])
def test_mains_has_its_peak_at_f0_and_its_harmonics(f0, kept):
    assert mains.mains_harmonics(f0, FS) == kept            # under 180 Hz: 50/100/150, 60/120
    x = mains.mains_noise(np.random.default_rng(1), int(60 * FS), FS, frequency=f0)
    assert x.shape == (int(60 * FS), 2)
    for lead in range(2):
        f, p = _spectrum(x[:, lead])
        assert abs(f[np.argmax(p)] - f0) <= mains.DRIFT_HZ + 0.05   # the strongest bin: the fundamental
        total = p.sum()
        near = sum(_band_power(f, p, k * f0 - 1.0, k * f0 + 1.0) for k in kept)
        assert near / total > 0.99                           # all power within 1 Hz of f0 and its harmonics
        for k in kept[1:]:                                    # every kept harmonic is there, weaker than f0
            h = _band_power(f, p, k * f0 - 1.0, k * f0 + 1.0)
            assert 1e-4 < h / _band_power(f, p, f0 - 1.0, f0 + 1.0) < 1.0


def test_mains_rms_and_determinism():
    a = mains.mains_noise(np.random.default_rng(7), 5000, FS, frequency=60.0, rms=0.25)
    assert np.sqrt(np.mean(a ** 2)) == pytest.approx(0.25, rel=1e-12)
    b = mains.mains_noise(np.random.default_rng(7), 5000, FS, frequency=60.0, rms=0.25)
    np.testing.assert_array_equal(a, b)
    c = mains.mains_noise(np.random.default_rng(8), 5000, FS, frequency=60.0, rms=0.25)
    assert not np.allclose(a, c)
    assert not np.allclose(a[:, 0], a[:, 1])                # leads differ in gain and phase


def test_mains_amplitude_varies_slowly():
    x = mains.mains_noise(np.random.default_rng(3), int(60 * FS), FS, frequency=50.0, harmonics=(1.0,))
    # RMS per second (50 cycles): the envelope 1 +- 0.3 makes it vary, but not by more than 1.3 / 0.7.
    per_second = np.sqrt(np.mean(x[:, 0].reshape(60, -1) ** 2, axis=1))
    assert per_second.max() / per_second.min() > 1.05
    assert per_second.max() / per_second.min() < 1.3 / 0.7 + 0.05


def test_mains_refuses_nonsense():
    with pytest.raises(ValueError):
        mains.mains_noise(np.random.default_rng(0), 100, 100.0, frequency=60.0)   # above Nyquist
    with pytest.raises(ValueError):
        mains.mains_noise(np.random.default_rng(0), 0, FS)


def test_dc_steps_by_hand():
    rng = np.random.default_rng(0)
    x = mains.dc_steps(np.random.default_rng(0), 100, channels=2, steps=1)
    offset = rng.normal(size=(1, 2))
    at = rng.integers(0, 100, size=2)
    height = rng.normal(size=2)
    for c in range(2):
        np.testing.assert_allclose(x[:at[c], c], offset[0, c])
        np.testing.assert_allclose(x[at[c]:, c], offset[0, c] + height[c])
    flat = mains.dc_steps(np.random.default_rng(0), 50, steps=0, rms=2.0)
    assert np.ptp(flat, axis=0).max() == 0 and np.sqrt(np.mean(flat ** 2)) == pytest.approx(2.0)
