"""The fresh-noise recipe's optional mains and DC steps: off by default (same bits), on when asked."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ecg_jax.configs import denoiser
from ecg_jax.errors import ConfigError
from ecg_jax.train import fresh_noise as fn


def _bank(mains: bool = False):
    # The bank of tests/test_fresh_noise.py: record r is the constant +-(r + 1); noise kind k a sine of its own.
    clean = np.stack([np.stack([np.full(2000, r + 1.0), np.full(2000, -(r + 1.0))], axis=1)
                      for r in range(3)]).astype(np.float32)
    t = np.arange(1500)
    noise = np.stack([np.stack([np.sin(0.05 * (k + 1) * t), np.cos(0.05 * (k + 1) * t)], axis=1)
                      for k in range(3)]).astype(np.float32)
    m = jnp.asarray(fn.mains_bank(0, seconds=20.0)) if mains else None
    return fn.Bank(jnp.asarray(clean), jnp.asarray(noise), m)


def test_default_recipe_draws_the_same_bits_as_before():
    c = denoiser.get_config("fresh")
    assert c.fresh.mains_probability == 0.0 and c.fresh.dc_step_probability == 0.0
    s = fn.FreshSettings.from_config(c.fresh)
    assert not s.artefacts
    small = fn.FreshSettings(batch_size=8, window=64)
    clean, noisy = fn.draw_batch(jax.random.key(5), _bank(), small)
    noisy = np.asarray(noisy, np.float64)
    # Recorded from the recipe before the option existed (same key, same bank).
    np.testing.assert_allclose(noisy[:3, 0, 0], [0.91576767, 3.8883214, 1.83371615], rtol=1e-6)
    assert noisy.sum() == pytest.approx(-466.5133131071925, rel=1e-6)
    assert np.sum(noisy ** 2) == pytest.approx(19253.073027052873, rel=1e-6)
    # A bank that carries mains changes nothing while the option is off.
    _, noisy2 = fn.draw_batch(jax.random.key(5), _bank(mains=True), small)
    np.testing.assert_array_equal(np.asarray(noisy2, np.float64), noisy)


def _mains_share(x: np.ndarray, f0: float) -> np.ndarray:
    """Per window: the share of lead 0's power within 2 Hz of f0 (window 1024 samples at 360 Hz)."""
    p = np.abs(np.fft.rfft(x[:, :, 0] * np.hanning(x.shape[1]), axis=1)) ** 2
    f = np.fft.rfftfreq(x.shape[1], 1 / 360.0)
    return p[:, np.abs(f - f0) <= 2.0].sum(axis=1) / p.sum(axis=1)


def test_mains_option_puts_50_or_60_hz_into_some_windows():
    s = fn.FreshSettings(batch_size=128, window=1024, mains_probability=0.5)
    bank = _bank(mains=True)
    # The test bank's record length 2000 fits a 1024 window; its noise 1500 too.
    clean, noisy = jax.jit(lambda k: fn.draw_batch(k, bank, s))(jax.random.key(0))
    noise = np.asarray(noisy, np.float64) - np.asarray(clean, np.float64)
    with_50, with_60 = _mains_share(noise, 50.0) > 0.05, _mains_share(noise, 60.0) > 0.05
    hit = with_50 | with_60
    # The test bank's noise sines sit at 0.05-0.15 rad/sample (2.9-8.6 Hz): no power near 50/60 on their own.
    assert 0.3 < hit.mean() < 0.7 and with_50.any() and with_60.any()
    # Without the option, none.
    s0 = fn.FreshSettings(batch_size=128, window=1024)
    clean0, noisy0 = fn.draw_batch(jax.random.key(0), bank, s0)
    noise0 = np.asarray(noisy0, np.float64) - np.asarray(clean0, np.float64)
    assert not (_mains_share(noise0, 50.0) > 0.05).any() and not (_mains_share(noise0, 60.0) > 0.05).any()


def test_dc_step_option_adds_a_step():
    s = fn.FreshSettings(batch_size=64, window=256, dc_step_probability=1.0)
    bank = _bank()
    clean, noisy = fn.draw_batch(jax.random.key(2), bank, s)
    clean0, noisy0 = fn.draw_batch(jax.random.key(2), bank, fn.FreshSettings(batch_size=64, window=256))
    # Same clean windows (the artefacts come from their own key); the noise mean moves off zero.
    np.testing.assert_array_equal(np.asarray(clean), np.asarray(clean0))
    mean_with = np.abs(np.mean(np.asarray(noisy) - np.asarray(clean), axis=1)).mean()
    mean_without = np.abs(np.mean(np.asarray(noisy0) - np.asarray(clean0), axis=1)).mean()
    assert mean_with > 5 * mean_without


def test_mains_option_needs_mains_in_the_bank_and_a_probability():
    with pytest.raises(ConfigError):
        fn.draw_batch(jax.random.key(0), _bank(), fn.FreshSettings(batch_size=4, window=64, mains_probability=0.5))
    c = denoiser.get_config("fresh")
    c.fresh.mains_probability = 1.5
    with pytest.raises(ConfigError):
        fn.FreshSettings.from_config(c.fresh)
