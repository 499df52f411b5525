"""The final revision's baselines: universal-threshold DWT, EMD (PyEMD), normalised windows, settings in rows."""

import math
import types

import numpy as np
import pytest
import pywt

from ecg_jax import baselines
from ecg_jax.baselines import (
    denormalize,
    dwt_universal_denoise,
    emd_denoise,
    normalize,
    reference_settings,
    reference_slice,
    score_baselines_on_grid,
    score_denoised,
    search_universal,
    universal,
)
from ecg_jax.baselines import emd as emd_lib
from ecg_jax.errors import ConfigError

L = 256
SQ2 = math.sqrt(2.0)


# ------------------------------------------------------------ universal DWT

def test_universal_dwt_by_hand_haar():
    # Haar, L = 4, x = [3, 1, 0, 4] -> level 2: cA2 = [4], cD2 = [0], cD1 = +-[sqrt2, -2 sqrt2].
    # Details factor 0.5: cD2 has median 0 -> T = 0 -> stays 0 (not pywt's NaN);
    # cD1: sigma = median(sqrt2, 2 sqrt2) / 0.6745 = 1.5 sqrt2 / 0.6745, T = 0.5 sigma sqrt(2 ln 4);
    # sqrt2 < T -> 0, 2 sqrt2 -> 2 sqrt2 - T; inverse Haar of the last pair gives -+(2 - T/sqrt2).
    x = np.array([3.0, 1.0, 0.0, 4.0])
    assert pywt.dwt_max_level(4, "haar") == 2
    T = 0.5 * (1.5 * SQ2 / 0.6745) * math.sqrt(2 * math.log(4))
    assert 2 * SQ2 - T > 0 > SQ2 - T
    r = 2 - T / SQ2
    zeroed = universal.dwt_universal_1d(x, "zero", 0.5, wavelet="haar")
    np.testing.assert_allclose(zeroed, [0, 0, -r, r], atol=1e-12)
    # Approximation factor 0: T = 0 keeps cA2 = [4] -> every sample gets its mean 2 back.
    kept = universal.dwt_universal_1d(x, 0.0, 0.5, wavelet="haar")
    np.testing.assert_allclose(kept, [2, 2, 2 - r, 2 + r], atol=1e-12)
    # Batched form, same numbers.
    batch = np.stack([x, x[::-1]], axis=-1)[None]
    np.testing.assert_allclose(dwt_universal_denoise(batch, "zero", 0.5, wavelet="haar")[0, :, 0],
                               [0, 0, -r, r], atol=1e-12)


def literal_reference(x, approx, detail):
    """The reference's per-lead computation written out with pywt 1-D calls (independent of our code)."""
    coeffs = pywt.wavedec(x, "db8", level=pywt.dwt_max_level(len(x), "db8"))
    out = []
    for i, c in enumerate(coeffs):
        factor = approx if i == 0 else detail
        if factor == "zero":
            out.append(np.zeros_like(c))
            continue
        sigma = np.median(np.abs(c)) / 0.6745
        out.append(pywt.threshold(c, factor * sigma * np.sqrt(2 * np.log(len(x))), mode="soft"))
    return pywt.waverec(out, "db8")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("approx,detail", [("zero", 0.5), (0.2, 0.4), (0.1, 0.2), (0.2, 1.2)])
def test_universal_dwt_batched_is_bitwise_the_per_window_reference(dtype, approx, detail):
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(5, L, 2)) + np.sin(np.arange(L) / 9.0)[None, :, None]).astype(dtype)
    assert pywt.dwt_max_level(L, "db8") == 4
    ours = dwt_universal_denoise(x, approx, detail)
    expected = np.stack([np.stack([literal_reference(x[b, :, c], approx, detail) for c in range(2)], -1)
                         for b in range(5)])
    assert ours.dtype == expected.dtype == np.float64   # T is a float64 scalar (np.sqrt of np.log)
    np.testing.assert_array_equal(ours, expected)
    np.testing.assert_array_equal(universal.dwt_universal_1d(x[3, :, 1], approx, detail), expected[3, :, 1])


def test_universal_dwt_float32_input_is_transformed_in_float32():
    # pywt keeps a float32 input in float32: the coefficients differ from the float64 ones.
    x = np.random.default_rng(1).normal(size=L).astype(np.float32)
    assert pywt.wavedec(x, "db8", level=4)[0].dtype == np.float32
    a = universal.dwt_universal_1d(x, 0.2, 0.4)
    b = universal.dwt_universal_1d(x.astype(np.float64), 0.2, 0.4)
    assert not np.array_equal(a, b) and np.allclose(a, b, atol=1e-5)


def test_reference_settings_lookup():
    expected = {("bw", s): (0.2, 0.2) for s in (-4, -2, 0, 2, 4)}
    expected.update({("em", s): ("zero", 0.4) for s in (-4, -2, 0, 2, 4)})
    expected.update({("ma", s): (0.2, 1.2) for s in (-4, -2, 0, 2, 4)})
    expected.update({("emb", -4): ("zero", 0.5), ("emb", -2): (0.2, 0.4), ("emb", 0): (0.2, 0.3),
                     ("emb", 2): (0.1, 0.2), ("emb", 4): (0.1, 0.2)})
    for (nt, snr), setting in expected.items():
        assert reference_settings(nt, snr) == setting
        assert reference_settings(nt, float(snr)) == setting
    with pytest.raises(ConfigError, match="threshold_search"):
        reference_settings("emb", 6)
    assert baselines.settings_for("dwt", "emb", -4, "universal") == {
        "dwt_rule": "universal", "approx_factor": "zero", "detail_factor": 0.5}
    assert baselines.settings_for("dwt", "emb", -4) == {"dwt_rule": "signed_max", "threshold": 0.074}
    # the search grid holds every reference setting
    grid = universal.search_grid()
    assert all(v in grid for v in expected.values())


# ------------------------------------------------------------ EMD

def test_reference_slices_lookup_and_text():
    assert {s: reference_slice("emb", s) for s in (-4, -2, 0, 2, 4)} == {
        -4: (1, -4), -2: (0, -3), 0: (0, -2), 2: (0, -1), 4: (None, None)}
    for s in (-4, 0, 4):
        assert reference_slice("bw", s) == (0, -1) and reference_slice("em", s) == (0, -4)
        assert reference_slice("ma", s) == (1, -1)
    assert [emd_lib.slice_text(s) for s in [(1, -4), (0, -1), (None, None)]] == ["[1:-4]", "[0:-1]", "[:]"]
    assert baselines._parse_slice("[1:-4]") == (1, -4) and baselines._parse_slice("[:]") == (None, None)
    with pytest.raises(ConfigError):
        reference_slice("emb", -6)


def fake_rows(signal):
    """A decomposition with a row count that depends on the signal: 2 + int(signal[0]) rows,
    row k = (k + 1) * 10**k (easy to read back which rows were summed)."""
    n = 2 + int(signal[0])
    return np.stack([np.full(len(signal), (k + 1) * 10.0 ** k) for k in range(n)])


def test_emd_slice_semantics_like_numpy(monkeypatch):
    monkeypatch.setattr(emd_lib, "emd_rows", fake_rows)
    sig = lambda n_rows: np.full(8, float(n_rows - 2))  # noqa: E731
    # 6 rows (1, 20, 300, 4000, 5e4, 6e5): [1:-4] -> row 1 only
    assert emd_lib.emd_denoise_1d(sig(6), (1, -4))[0] == 20
    # 5 rows: [1:-4] is empty -> zeros, exactly as np.sum(rows[1:-4], axis=0)
    np.testing.assert_array_equal(emd_lib.emd_denoise_1d(sig(5), (1, -4)), np.zeros(8))
    np.testing.assert_array_equal(emd_lib.emd_denoise_1d(sig(2), (0, -4)), np.zeros(8))
    # [1:-1] of 3 rows -> row 1; [0:-1] of 2 rows -> row 0; all rows of 3 -> 321
    assert emd_lib.emd_denoise_1d(sig(3), (1, -1))[0] == 20
    assert emd_lib.emd_denoise_1d(sig(2), (0, -1))[0] == 1
    assert emd_lib.emd_denoise_1d(sig(3), (None, None))[0] == 321
    for n_rows in range(2, 8):
        for sl in [(1, -4), (0, -3), (0, -2), (0, -1), (None, None), (0, -4), (1, -1)]:
            rows = fake_rows(sig(n_rows))
            np.testing.assert_array_equal(emd_lib.emd_denoise_1d(sig(n_rows), sl),
                                          np.sum(rows[slice(*sl)], axis=0))


def test_emd_batched_layout_and_pool_equal_serial(monkeypatch):
    # forked workers inherit the patched decomposition; (B, L, C) order survives the pool
    monkeypatch.setattr(emd_lib, "emd_rows", lambda s: np.stack([s, 2 * s, 3 * s]))
    x = np.arange(5 * 8 * 2, dtype=np.float32).reshape(5, 8, 2)
    serial = emd_denoise(x, (1, None), processes=1)
    pooled = emd_denoise(x, (1, None), processes=2)
    np.testing.assert_array_equal(serial, 5 * x)
    np.testing.assert_array_equal(pooled, serial)


def test_real_pyemd_all_rows_rebuild_the_signal_and_pool_is_bitwise_serial():
    rng = np.random.default_rng(3)
    t = np.arange(L)
    x = (np.sin(2 * np.pi * t / 64)[None, :, None] + 0.3 * rng.normal(size=(3, L, 2))).astype(np.float32)
    # IMFs + residue sum to the signal (the float32 input is sifted in float32)
    np.testing.assert_allclose(emd_denoise(x, (None, None), processes=1), x, atol=1e-5)
    serial = emd_denoise(x, (0, -1), processes=1)
    np.testing.assert_array_equal(emd_denoise(x, (0, -1), processes=2), serial)
    from PyEMD import EMD
    np.testing.assert_array_equal(serial[2, :, 1], np.sum(EMD().emd(x[2, :, 1].copy())[0:-1], axis=0))


# ------------------------------------------------------------ normalised windows and the grid

def test_normalize_round_trip():
    x = np.random.default_rng(4).normal(3.0, 2.0, size=(4, L, 2)).astype(np.float32)
    stats = (np.array([3.0, -1.0], np.float32), np.array([2.0, 0.5], np.float32))
    z = normalize(x, stats)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z[..., 1], (x[..., 1] + 1.0) / 0.5, rtol=1e-6)
    np.testing.assert_allclose(denormalize(z, stats), x, rtol=1e-6, atol=1e-6)


class FakeSet:
    def __init__(self, clean, noise):
        self.clean, self.noise = clean, noise

    def noisy(self, noise_type, snr_db):
        return (self.clean + 10 ** (-snr_db / 20) * self.noise).astype(np.float32)


def fake_prepared(n_train=6, n_test=4, seed=5):
    rng = np.random.default_rng(seed)
    t = np.arange(L)
    clean = (np.sin(2 * np.pi * t / 50)[None, :, None] * rng.uniform(0.5, 2, (n_train + n_test, 1, 2)))
    noise = 0.3 * rng.normal(size=clean.shape) + 0.5
    train, test = FakeSet(clean[:n_train], noise[:n_train]), FakeSet(clean[n_train:], noise[n_train:])

    def norm_stats(noise_type, snr_db):
        x = train.noisy(noise_type, snr_db)
        return x.mean(axis=(0, 1)), x.std(axis=(0, 1))
    return types.SimpleNamespace(train=train, test=test, norm_stats=norm_stats, n_test=n_test,
                                 source="synthetic")


def final_config(**baseline_overrides):
    import importlib.util
    import os

    import ml_collections

    from ecg_jax.config_utils import resolve_config
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "default.py")
    spec = importlib.util.spec_from_file_location("default_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    c = module.get_config("smoke")
    c.data.revision, c.data.split, c.data.source = "final", "inter_patient", "synthetic"
    c.noise_types, c.snr_levels = ("emb", "em"), (-4, 2)
    c.baselines.methods = ("dwt", "emd")
    c.baselines.dwt_rule, c.baselines.on_normalized = "universal", True
    for k, v in baseline_overrides.items():
        c.baselines[k] = v
    assert isinstance(c, ml_collections.ConfigDict)
    return resolve_config(c)


def test_grid_on_normalized_rows_record_revision_and_settings():
    prepared = fake_prepared()
    rows = score_baselines_on_grid(final_config(), prepared, processes=1)
    assert [(r["method"], r["noise_type"], r["snr_db"]) for r in rows] == [
        ("dwt", "emb", -4), ("emd", "emb", -4), ("dwt", "emb", 2), ("emd", "emb", 2),
        ("dwt", "em", -4), ("emd", "em", -4), ("dwt", "em", 2), ("emd", "em", 2)]
    assert all(r["revision"] == "final" and r["on_normalized"] is True and r["split"] == "inter_patient"
               for r in rows)
    dwt_emb4 = rows[0]
    assert (dwt_emb4["dwt_rule"], dwt_emb4["approx_factor"], dwt_emb4["detail_factor"]) == ("universal", "zero", 0.5)
    assert rows[2]["approx_factor"] == 0.1 and rows[1]["imf_slice"] == "[1:-4]" and rows[3]["imf_slice"] == "[0:-1]"
    assert rows[5]["imf_slice"] == "[0:-4]" and rows[6]["approx_factor"] == "zero"
    # the numbers: normalise with the training statistics, denoise, de-normalise, score against clean
    stats = prepared.norm_stats("emb", -4)
    noisy = prepared.test.noisy("emb", -4)
    by_hand = denormalize(dwt_universal_denoise(normalize(noisy, stats), "zero", 0.5), stats)
    assert dwt_emb4["metrics"] == score_denoised(prepared.test.clean, by_hand, noisy)
    emd_hand = denormalize(emd_denoise(normalize(noisy, stats), (1, -4), processes=1), stats)
    assert rows[1]["metrics"] == score_denoised(prepared.test.clean, emd_hand, noisy)


def test_on_normalized_identity_scores_like_the_noisy_input():
    # FFT with threshold 0 is the identity: on normalised windows the de-normalised output is the input
    prepared = fake_prepared()
    cfg = final_config(methods=("fft",), fft_threshold=0.0)
    row, = score_baselines_on_grid(cfg, prepared)[:1]
    noisy = prepared.test.noisy("emb", -4)
    ref = score_denoised(prepared.test.clean, noisy, noisy)
    assert row["metrics"]["snr_db"] == pytest.approx(ref["snr_db"], abs=1e-4)
    assert row["metrics"]["snr_improvement_db"] == pytest.approx(0.0, abs=1e-4)


def test_threshold_search_universal_on_training_windows_and_emd_refused():
    prepared = fake_prepared()
    rows = score_baselines_on_grid(final_config(methods=("dwt",), threshold_search=True), prepared)
    grid = universal.search_grid()
    for r in rows:
        assert (r["approx_factor"], r["detail_factor"]) in grid and r["threshold_search"] is True
    stats = prepared.norm_stats("emb", -4)
    train_noisy = prepared.train.noisy("emb", -4)
    best = search_universal(prepared.train.clean, train_noisy, stats=stats)
    assert (rows[0]["approx_factor"], rows[0]["detail_factor"]) == best
    # the chosen pair is at least as good as every other pair on the training windows
    score = lambda ad: score_denoised(prepared.train.clean, denormalize(  # noqa: E731
        dwt_universal_denoise(normalize(train_noisy, stats), *ad), stats), train_noisy)["snr_db"]
    assert all(score(best) >= score(ad) for ad in grid[::7])
    with pytest.raises(ConfigError, match="not available for EMD"):
        score_baselines_on_grid(final_config(threshold_search=True), prepared)


def test_unknown_dataset_refused_before_any_work():
    cfg = final_config()
    cfg.snr_levels = (-4, 6)
    with pytest.raises(ConfigError, match="6 dB"):
        score_baselines_on_grid(cfg, fake_prepared())


def test_denoise_like_row_replays_a_row():
    prepared = fake_prepared()
    rows = score_baselines_on_grid(final_config(methods=("dwt",)), prepared)
    noisy = prepared.test.noisy("emb", -4)
    stats = prepared.norm_stats("emb", -4)
    out = baselines.denoise_like_row(rows[0], noisy, stats)
    assert score_denoised(prepared.test.clean, out, noisy) == rows[0]["metrics"]
    with pytest.raises(ValueError):
        baselines.denoise_like_row(rows[0], noisy)
