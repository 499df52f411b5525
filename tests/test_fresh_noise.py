"""The fresh-noise recipe (ecg_jax/train/fresh_noise.py): what a drawn batch is, the loss, one smoke run."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ecg_jax.configs import denoiser
from ecg_jax.train import fresh_noise as fn


def _bank(records=3, length=2000, noise_length=1500):
    # Clean record r is the constant r + 1 on lead 0 and -(r + 1) on lead 1, so a window names its record.
    clean = np.stack([np.stack([np.full(length, r + 1.0), np.full(length, -(r + 1.0))], axis=1)
                      for r in range(records)]).astype(np.float32)
    # Noise kind k: sin on lead 0, cos on lead 1, a frequency of its own: power 0.5 per window.
    t = np.arange(noise_length)
    noise = np.stack([np.stack([np.sin(0.05 * (k + 1) * t), np.cos(0.05 * (k + 1) * t)], axis=1)
                      for k in range(3)]).astype(np.float32)
    return fn.Bank(jnp.asarray(clean), jnp.asarray(noise))


def test_drawn_batches_have_record_windows_snr_in_range_and_one_gain():
    s = fn.FreshSettings(batch_size=256, window=64, snr_db_range=(-6.0, 12.0), amplitude_range=(0.5, 2.0))
    clean, noisy = jax.jit(lambda k: fn.draw_batch(k, _bank(), s))(jax.random.key(0))
    clean, noisy = np.asarray(clean, np.float64), np.asarray(noisy, np.float64)
    assert clean.shape == noisy.shape == (256, 64, 2)
    # Each clean window is one record's constant times one gain in [0.5, 2]: lead 1 = -lead 0, flat in time.
    np.testing.assert_allclose(clean[:, :, 1], -clean[:, :, 0], rtol=1e-6)
    np.testing.assert_allclose(clean, clean[:, :1, :].repeat(64, axis=1), rtol=1e-6)
    gain_times_record = clean[:, 0, 0]
    assert gain_times_record.min() >= 0.5 - 1e-5 and gain_times_record.max() <= 3 * 2.0 + 1e-5
    # The input SNR of every window lies in the range (the gain scales clean and noise alike) and spreads over it.
    snr = 10 * np.log10(np.sum(clean ** 2, axis=(1, 2)) / np.sum((noisy - clean) ** 2, axis=(1, 2)))
    assert snr.min() >= -6.0 - 1e-3 and snr.max() <= 12.0 + 1e-3
    assert snr.min() < -4.0 and snr.max() > 10.0
    # A new key: new windows and new noise.
    clean2, noisy2 = fn.draw_batch(jax.random.key(1), _bank(), s)
    assert not np.allclose(np.asarray(noisy2), noisy)


def test_noise_mixtures_use_every_kind_and_sometimes_all_three_equally():
    bank = _bank()
    noise = np.asarray(fn.draw_noise(jax.random.key(3), bank.noise, 512, 64, 0.25), np.float64)
    # One kind with weight <= 1 has power <= 0.5 (sin^2 and cos^2 over both leads); mixtures of several
    # (a quarter of the windows are exactly bw + em + ma) have more.
    power = np.mean(noise ** 2, axis=(1, 2))
    assert np.all(power > 0)                                   # never a window without noise
    # The sum bw + em + ma with unit weights has expected power 3 * 0.5; single kinds at most 0.5.
    assert np.mean(power > 0.5 + 1e-3) > 0.2


def test_moving_average_matches_numpy():
    x = np.random.default_rng(0).normal(size=(2, 50, 2)).astype(np.float32)
    got = np.asarray(fn.moving_average(jnp.asarray(x), 8))
    want = np.stack([[np.convolve(x[b, :, c], np.ones(8) / 8, mode="valid") for c in range(2)]
                     for b in range(2)]).transpose(0, 2, 1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_lowfreq_weight_adds_the_moving_average_error():
    s0 = fn.FreshSettings(lowfreq_weight=0.0, lowfreq_window=4)
    s2 = fn.FreshSettings(lowfreq_weight=2.0, lowfreq_window=4)
    out = jnp.ones((1, 8, 2))       # a constant error of 1: its moving average is 1 too
    target = jnp.zeros((1, 8, 2))
    assert float(fn.loss_of(out, target, s0)) == pytest.approx(1.0)
    assert float(fn.loss_of(out, target, s2)) == pytest.approx(3.0)
    alternating = jnp.asarray(np.tile([1.0, -1.0], 4)[None, :, None].repeat(2, axis=2))  # averages to 0
    assert float(fn.loss_of(alternating, target, s2)) == pytest.approx(1.0)


def test_fresh_config_keeps_the_card_test_records_out():
    c = denoiser.get_config("fresh")
    assert c.fresh.snr_db_range[0] <= -6 and c.fresh.snr_db_range[1] >= 12
    card = {"training_data": {"test_records": ["100", "101"], "train_records": ["103", "105", "203"]}}
    train, val, test = fn._records_of(card, _with_val(c, ("105",)))
    assert train == ["103", "203"] and val == ["105"] and test == ["100", "101"]
    # A card written by the fresh-noise program lists its validation records apart: same pool, same split.
    card2 = {"training_data": {"test_records": ["100", "101"], "train_records": ["103", "203"],
                               "val_records": ["105"]}}
    assert fn._records_of(card2, _with_val(c, ("105",))) == (train, val, test)
    from ecg_jax.errors import ConfigError
    with pytest.raises(ConfigError):
        fn._records_of(card, _with_val(c, ("100",)))


def _with_val(c, val):
    c = c.copy_and_resolve_references()
    c.fresh.val_records = val
    return c


def test_smoke_run_writes_loadable_weights(shared_data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("ECG_JAX_DATA", str(shared_data_dir))
    c = denoiser.get_config("fresh,smoke")
    c.fresh.steps, c.fresh.eval_every, c.fresh.val_windows = 4, 2, 64
    result = fn.train(c, str(tmp_path), log=lambda m: None)
    assert [row["step"] for row in result["history"]] == [2, 4]
    from ecg_jax.denoise import load_denoiser
    from ecg_jax.denoise.weights import read_meta

    meta = read_meta(str(tmp_path / "best.npz"))
    assert meta["recipe"]["program"] == "ecg_jax.train.fresh_noise"
    assert not set(meta["training_data"]["test_records"]) & set(meta["training_data"]["train_records"])
    y = load_denoiser(str(tmp_path / "last.npz"))(np.random.default_rng(0).normal(size=(1000, 2)), fs=360)
    assert y.shape == (1000, 2) and np.all(np.isfinite(y))
