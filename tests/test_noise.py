"""Noise mixing at a target SNR, emb composition, zero-power guard, statistics."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ecg_jax.data import noise
from ecg_jax.errors import ConfigError

# One window (L=2, C=2): Pc = (9 + 16) / 4 = 6.25; noise of ones: Pn = 1.
CLEAN = np.array([[3.0, 0.0], [0.0, 4.0]])
ONES = np.ones((2, 2))


def test_hand_example_float64():
    with jax.enable_x64(True):
        clean, ones = jnp.asarray(CLEAN), jnp.asarray(ONES)
        at_0 = noise.mix_at_snr(clean, ones, 0.0)     # scale sqrt(6.25 / 1) = 2.5
        np.testing.assert_allclose(np.asarray(at_0), CLEAN + 2.5, rtol=0, atol=1e-12)
        at_10 = noise.mix_at_snr(clean, ones, 10.0)   # scale sqrt(6.25 / 10)
        np.testing.assert_allclose(np.asarray(at_10), CLEAN + np.sqrt(0.625), atol=1e-12)
        for snr in (-4.0, -2.0, 0.0, 2.0, 4.0, 10.0):
            got = float(noise.input_snr_db(clean, noise.mix_at_snr(clean, ones, snr)))
            assert abs(got - snr) < 1e-4


def test_per_window_snr_array_and_vmap():
    rng = np.random.default_rng(0)
    clean = jnp.asarray(rng.normal(size=(4, 64, 2)), jnp.float32)
    raw = jnp.asarray(rng.normal(size=(4, 64, 2)), jnp.float32)
    targets = jnp.asarray([-4.0, -2.0, 2.0, 4.0])
    achieved = noise.input_snr_db(clean, noise.mix_at_snr(clean, raw, targets))
    np.testing.assert_allclose(np.asarray(achieved), np.asarray(targets), atol=1e-4)
    levels = jnp.asarray([-4.0, 0.0, 4.0])
    many = jax.vmap(lambda s: noise.mix_at_snr(clean, raw, s))(levels)
    assert many.shape == (3, 4, 64, 2)
    np.testing.assert_allclose(np.asarray(many[2]), np.asarray(noise.mix_at_snr(clean, raw, 4.0)),
                               rtol=1e-6)


def _mix(clean, seg, recipe, snr):
    comps = jnp.asarray(np.stack([seg[k] for k in recipe.components]))
    return np.asarray(noise.mix_components(jnp.asarray(clean), comps, jnp.ones(len(recipe.components)),
                                           jnp.float32(snr), jnp.float32(recipe.divisor), recipe.scale_each))


def _scale(clean, n, snr):
    return np.sqrt((clean ** 2).mean(axis=(1, 2)) / ((n ** 2).mean(axis=(1, 2)) * 10 ** (snr / 10)))[:, None, None]


def test_emb_recipes_of_the_three_revisions_against_numpy():
    rng = np.random.default_rng(1)
    raw = {t: rng.normal(size=(3, 32, 2)) for t in ("bw", "em", "ma")}
    clean = rng.normal(size=(3, 32, 2))
    total = raw["bw"] + raw["em"] + raw["ma"]
    # paper: the sum of the shared segments, scaled as one noise
    r = noise.noise_recipe("emb", 2.0, revision="paper")
    assert r == noise.NoiseRecipe(("bw", "em", "ma"), 1.0, False)
    np.testing.assert_allclose(_mix(clean, raw, r, 2.0), clean + _scale(clean, total, 2) * total,
                               rtol=1e-5, atol=1e-5)
    # first: each noise scaled on its own against the clean window, then averaged
    r = noise.noise_recipe("emb", -4.0, revision="first", emb_mixing="mean_of_scaled")
    assert r == noise.NoiseRecipe(("bw", "em", "ma"), 3.0, True)
    expected = clean + sum(_scale(clean, raw[t], -4) * raw[t] for t in raw) / 3
    np.testing.assert_allclose(_mix(clean, raw, r, -4.0), expected, rtol=1e-5, atol=1e-5)
    # final: segments of their own per SNR, averaged, scaled as one noise
    r = noise.noise_recipe("emb", 0.0, revision="final")
    assert r == noise.NoiseRecipe(("emb.bw@0", "emb.em@0", "emb.ma@0"), 3.0, False)
    own = {f"emb.{t}@0": raw[t] for t in raw}
    np.testing.assert_allclose(_mix(clean, own, r, 0.0), clean + _scale(clean, total / 3, 0) * total / 3,
                               rtol=1e-5, atol=1e-5)
    # a single noise type is the same under every revision, with its own key under "final"
    assert noise.noise_recipe("em", 2.0, revision="first", emb_mixing="mean_of_scaled").components == ("em",)
    assert noise.noise_recipe("em", -2.0, revision="final").components == ("em@-2",)
    assert noise.raw_type_of("emb.ma@-4") == "ma" and noise.raw_type_of("bw") == "bw"
    np.testing.assert_allclose(_mix(clean, {"em": raw["em"]}, noise.NoiseRecipe(("em",)), 2.0),
                               clean + _scale(clean, raw["em"], 2) * raw["em"], rtol=1e-5, atol=1e-5)


def test_unknown_noise_type_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="unknown noise type 'pink'; valid noise types: emb, bw, ma, em"):
        noise.noise_recipe("pink", 0.0)


def test_zero_power_noise_gives_clean_without_nan():
    clean = jnp.asarray(np.stack([CLEAN, CLEAN]), jnp.float32)
    raw = jnp.stack([jnp.zeros((2, 2)), jnp.ones((2, 2))])  # window 0 has no noise
    out = noise.mix_at_snr(clean, raw, 0.0)
    assert np.array_equal(np.asarray(out[0]), CLEAN.astype(np.float32))
    np.testing.assert_allclose(np.asarray(out[1]), CLEAN + 2.5, rtol=1e-6)
    grads = jax.grad(lambda c, n: noise.mix_at_snr(c, n, 0.0).sum(), argnums=(0, 1))(clean, raw)
    assert all(np.isfinite(np.asarray(g)).all() for g in grads)
    snr = np.asarray(noise.input_snr_db(clean, out))
    assert np.isposinf(snr[0]) and abs(snr[1]) < 1e-4


def test_channel_stats_population_std_over_windows_and_time():
    x = np.array([[[1.0, 10.0], [3.0, 10.0]], [[5.0, 20.0], [7.0, 20.0]]], np.float32)
    mean, std = noise.channel_stats(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(mean), [4.0, 15.0])
    np.testing.assert_allclose(np.asarray(std), [np.sqrt(5.0), 5.0], rtol=1e-6)  # ddof=0


def test_normalize_denormalize_are_inverse():
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(3.0, 2.0, size=(5, 16, 2)), jnp.float32)
    mean, std = jnp.asarray([3.0, -1.0]), jnp.asarray([2.0, 0.0])  # channel 1 constant
    z = noise.normalize(x, mean, std)
    np.testing.assert_allclose(np.asarray(z[..., 0]), (np.asarray(x[..., 0]) - 3.0) / 2.0, rtol=1e-6)
    assert np.isfinite(np.asarray(z)).all()
    np.testing.assert_allclose(np.asarray(noise.denormalize(z, mean, std)), np.asarray(x), atol=1e-6)
