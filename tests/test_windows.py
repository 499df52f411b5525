"""Window plans: sizes, disjointness, determinism and the documented draw order."""

from __future__ import annotations

import numpy as np
import pytest

from ecg_jax.data import windows
from ecg_jax.errors import ConfigError, DataError

MITDB_LEN = 650000
NOISE_LEN = {"bw": MITDB_LEN, "em": MITDB_LEN, "ma": MITDB_LEN}


def plan(lengths, **kw):
    args = dict(window=256, n_windows=10000, train_fraction=0.8, divisor=10, data_seed=42)
    args.update(kw)
    return windows.plan_windows(lengths, NOISE_LEN, **args)


def full_lengths(n=48):
    return {f"{100 + i}": MITDB_LEN for i in range(n)}


def pairs(p, rows):
    return set(zip(p.window_records[rows].tolist(), p.starts[rows].tolist(), strict=True))


def test_reference_protocol_sizes_and_disjoint_split():
    p = plan(full_lengths())
    assert p.pool_size == 48 * 253 == 12144
    assert p.n_windows == 10000 and p.n_train == 8000
    train, test = pairs(p, slice(0, 8000)), pairs(p, slice(8000, None))
    assert len(train) == 8000 and len(test) == 2000  # no window twice
    assert not train & test
    assert p.starts.min() >= 0 and p.starts.max() <= MITDB_LEN - 256
    for t in ("bw", "em", "ma"):
        s = p.noise_starts[t]
        assert s.shape == (10000,) and s.min() >= 0 and s.max() <= MITDB_LEN - 256


def test_subset_sizes_are_proportional():
    p = plan(full_lengths(8), n_windows=1000)
    assert p.pool_size == 8 * 253 and (p.n_train, p.n_windows - p.n_train) == (800, 200)
    # Every record contributes at most its 253 pool windows.
    assert np.bincount(p.record_index).max() <= 253


def test_windows_per_record_formula():
    # 3 windows per record: len // 2560 = 3; a record shorter than 2560 still gives 1.
    lengths = {"a": 3 * 2560 + 100, "b": 300}
    p = plan(lengths, n_windows=4)
    assert p.pool_size == 4
    assert sorted(p.window_records.tolist()) == ["a", "a", "a", "b"]


def test_determinism_and_seed_dependence():
    a, b = plan(full_lengths(6), n_windows=1000), plan(full_lengths(6), n_windows=1000)
    c = plan(full_lengths(6), n_windows=1000, data_seed=43)
    assert np.array_equal(a.starts, b.starts) and np.array_equal(a.record_index, b.record_index)
    assert all(np.array_equal(a.noise_starts[t], b.noise_starts[t]) for t in a.noise_starts)
    assert not np.array_equal(a.starts, c.starts)


def test_record_order_is_sorted_whatever_the_input_order():
    forward = {"100": MITDB_LEN, "101": MITDB_LEN, "200": MITDB_LEN}
    backward = dict(reversed(list(forward.items())))
    a, b = plan(forward, n_windows=500), plan(backward, n_windows=500)
    assert a.record_names == b.record_names == ("100", "101", "200")
    assert np.array_equal(a.window_records, b.window_records) and np.array_equal(a.starts, b.starts)


def test_draw_order_matches_the_documentation():
    lengths = {"r1": 9000, "r0": 6000}
    p = windows.plan_windows(lengths, {"bw": 1000, "em": 2000, "ma": 3000}, window=100,
                             n_windows=10, train_fraction=0.7, divisor=5, data_seed=7)
    rng = np.random.default_rng(7)
    s0 = rng.choice(6000 - 100 + 1, size=12, replace=False)   # r0: 6000 // 500
    s1 = rng.choice(9000 - 100 + 1, size=18, replace=False)   # r1: 9000 // 500
    index = np.r_[np.zeros(12, int), np.ones(18, int)]
    starts = np.r_[s0, s1]
    chosen = rng.choice(30, size=10, replace=False)
    chosen = chosen[rng.permutation(10)]
    assert np.array_equal(p.record_index, index[chosen]) and np.array_equal(p.starts, starts[chosen])
    assert p.n_train == 7
    for t, length in (("bw", 1000), ("em", 2000), ("ma", 3000)):
        assert np.array_equal(p.noise_starts[t], rng.integers(0, length - 100 + 1, size=10))


def test_pool_too_small_is_a_data_error():
    with pytest.raises(DataError, match="cannot draw 600 windows from a pool of 506"):
        plan(full_lengths(2), n_windows=600)


def test_train_count_rounds_and_bad_fractions_fail():
    assert windows.n_train_of(100, 0.29) == 29  # int(0.29 * 100) would give 28
    for bad in (0.0, 1.0):
        with pytest.raises(ConfigError, match="train_fraction"):
            windows.n_train_of(100, bad)
    with pytest.raises(ConfigError, match="both must be at least 1"):
        windows.n_train_of(2, 0.9)


def test_inter_patient_split_separates_records():
    p = plan(full_lengths(10), n_windows=2000, split="inter_patient")
    assert len(p.train_records) == 8 and len(p.test_records) == 2
    assert not set(p.train_records) & set(p.test_records)
    assert set(p.window_records[:1600]) <= set(p.train_records)
    assert set(p.window_records[1600:]) <= set(p.test_records)
    assert np.all(p.starts % 256 == 0)  # non-overlapping tiles
    assert len(pairs(p, slice(None))) == 2000
    again = plan(full_lengths(10), n_windows=2000, split="inter_patient")
    assert again.train_records == p.train_records and np.array_equal(again.starts, p.starts)


def test_inter_patient_too_few_windows_is_a_data_error():
    lengths = {"a": 2560, "b": 2560, "c": 2560, "d": 2560, "e": 2560}  # 10 tiles each
    with pytest.raises(DataError, match="cannot draw 48 train windows from the 40"):
        plan(lengths, n_windows=60, split="inter_patient")
    with pytest.raises(DataError, match="at least 2 records"):
        plan({"a": 2560}, n_windows=4, split="inter_patient")


def test_cut_windows_hand_example():
    signal = np.arange(20, dtype=np.float32).reshape(10, 2)
    out = windows.cut_windows(signal, np.array([0, 7]), 3)
    assert out.shape == (2, 3, 2)
    assert out[1].tolist() == [[14, 15], [16, 17], [18, 19]]
    assert out[0, :, 0].tolist() == [0, 2, 4]
