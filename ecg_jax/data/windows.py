"""Which windows of which records form the train and test sets.

This module only plans (record index, start) pairs; datasets.py cuts the
arrays. Everything comes from ONE numpy Generator, `default_rng(data_seed)`,
with draws in this fixed order, so a plan is reproducible from the seed:

split="reference" (the reference's window-level protocol):
  1. for each record in sorted order: `k = max(1, len // (window * divisor))`
     distinct starts, `rng.choice(len - window + 1, k, replace=False)`
     (uniform over [0, len - window]; distinct so no window is in the pool
     twice, which would otherwise put identical windows in train and test);
  2. the pool (records concatenated in sorted order) -> `n_windows` of them,
     `rng.choice(pool, n_windows, replace=False)`;
  3. `rng.permutation(n_windows)` of those; first `n_train` train, rest test.
split="inter_patient" (records never shared between train and test):
  1. `rng.permutation(n_records)`; the first `n_train_records` records train,
     the rest test, where n_train_records = round(n_records * train_fraction)
     clipped to [1, n_records - 1];
  2. non-overlapping windows: every record is tiled at starts 0, window,
     2*window, ... (the last partial tile dropped);
  3. `rng.choice(train tiles, n_train, replace=False)`, then
     `rng.choice(test tiles, n_test, replace=False)` (tiles listed record by
     record in sorted order).
Both: n_train = round(n_windows * train_fraction) (round, not int(), so that
e.g. 0.29 * 100 gives 29, not 28), then the noise segments, after the windows:
for each raw noise type in order bw, em, ma, `rng.integers(0, len - window + 1,
N)` starts (with replacement, both channels), start i paired with window i.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import numpy as np

from ecg_jax.config_utils import RAW_NOISE_TYPES, SPLITS, check_choice
from ecg_jax.errors import ConfigError, DataError


@dataclasses.dataclass(frozen=True, eq=False)
class WindowPlan:
    """Train rows first: rows [0, n_train) are train, [n_train, N) test."""

    record_names: tuple[str, ...]   # sorted; record_index indexes this
    record_index: np.ndarray        # (N,) int32
    starts: np.ndarray              # (N,) int64
    n_train: int
    noise_starts: Mapping[str, np.ndarray]  # raw noise type -> (N,) int64
    train_records: tuple[str, ...] = ()     # inter_patient only
    test_records: tuple[str, ...] = ()
    pool_size: int = 0              # number of candidate windows drawn from

    @property
    def n_windows(self) -> int:
        return int(self.starts.shape[0])

    @property
    def window_records(self) -> np.ndarray:
        return np.asarray(self.record_names)[self.record_index]


def n_train_of(n_windows: int, train_fraction: float) -> int:
    if not 0.0 < train_fraction < 1.0:
        raise ConfigError(f"data.train_fraction must be between 0 and 1, got {train_fraction}")
    n_train = int(round(n_windows * train_fraction))
    if not 0 < n_train < n_windows:
        raise ConfigError(f"data.n_windows={n_windows} with train_fraction={train_fraction} "
                          f"leaves {n_train} train and {n_windows - n_train} test windows; "
                          "both must be at least 1")
    return n_train


def plan_windows(record_lengths: Mapping[str, int], noise_lengths: Mapping[str, int], *,
                 window: int, n_windows: int, train_fraction: float, divisor: int,
                 data_seed: int, split: str = "reference") -> WindowPlan:
    """Draw the windows and their noise segments (see the module docstring)."""
    check_choice("data.split", split, SPLITS)
    if window < 1 or n_windows < 2 or divisor < 1:
        raise ConfigError(f"need window >= 1, n_windows >= 2, divisor >= 1; got "
                          f"window={window}, n_windows={n_windows}, divisor={divisor}")
    names = tuple(sorted(record_lengths))
    lengths = np.array([int(record_lengths[n]) for n in names], dtype=np.int64)
    short = [n for n, ln in zip(names, lengths, strict=True) if ln < window]
    if short:
        raise DataError(f"record(s) {', '.join(short)} shorter than one window of {window} samples")
    n_train = n_train_of(n_windows, train_fraction)
    rng = np.random.default_rng(data_seed)
    if split == "reference":
        plan = _reference_split(rng, names, lengths, window, n_windows, n_train, divisor)
    else:
        plan = _inter_patient_split(rng, names, lengths, window, n_windows, n_train, train_fraction)
    noise_starts = {}
    for noise_type in RAW_NOISE_TYPES:
        length = int(noise_lengths[noise_type])
        if length < window:
            raise DataError(f"noise record {noise_type} is shorter than one window of {window} samples")
        noise_starts[noise_type] = rng.integers(0, length - window + 1, size=n_windows, dtype=np.int64)
    return dataclasses.replace(plan, noise_starts=noise_starts)


def _reference_split(rng: np.random.Generator, names: tuple[str, ...], lengths: np.ndarray,
                     window: int, n_windows: int, n_train: int, divisor: int) -> WindowPlan:
    pool_index, pool_starts = [], []
    for i, length in enumerate(lengths):
        n_positions = int(length) - window + 1
        k = min(max(1, int(length) // (window * divisor)), n_positions)
        pool_starts.append(rng.choice(n_positions, size=k, replace=False).astype(np.int64))
        pool_index.append(np.full(k, i, dtype=np.int32))
    index, starts = np.concatenate(pool_index), np.concatenate(pool_starts)
    if n_windows > index.size:
        raise DataError(f"cannot draw {n_windows} windows from a pool of {index.size} "
                        f"({len(names)} record(s)); lower data.n_windows or add records")
    chosen = rng.choice(index.size, size=n_windows, replace=False)
    chosen = chosen[rng.permutation(n_windows)]
    return WindowPlan(names, index[chosen], starts[chosen], n_train, {}, pool_size=int(index.size))


def _tiles(lengths: np.ndarray, records: Sequence[int], window: int) -> tuple[np.ndarray, np.ndarray]:
    index, starts = [], []
    for i in sorted(records):
        s = np.arange(0, int(lengths[i]) - window + 1, window, dtype=np.int64)
        starts.append(s)
        index.append(np.full(s.size, i, dtype=np.int32))
    return np.concatenate(index), np.concatenate(starts)


def _inter_patient_split(rng: np.random.Generator, names: tuple[str, ...], lengths: np.ndarray,
                         window: int, n_windows: int, n_train: int,
                         train_fraction: float) -> WindowPlan:
    if len(names) < 2:
        raise DataError("split='inter_patient' needs at least 2 records (one train, one test)")
    order = rng.permutation(len(names))
    n_train_records = min(max(1, int(round(len(names) * train_fraction))), len(names) - 1)
    groups = (order[:n_train_records], order[n_train_records:])
    n_test = n_windows - n_train
    parts = []
    for group, wanted, label in zip(groups, (n_train, n_test), ("train", "test"), strict=True):
        index, starts = _tiles(lengths, group, window)
        if wanted > index.size:
            raise DataError(
                f"split='inter_patient': cannot draw {wanted} {label} windows from the "
                f"{index.size} non-overlapping windows of the {label} records "
                f"({', '.join(names[i] for i in sorted(group))}); lower data.n_windows or add records")
        chosen = rng.choice(index.size, size=wanted, replace=False)
        parts.append((index[chosen], starts[chosen], index.size))
    return WindowPlan(
        names,
        np.concatenate([parts[0][0], parts[1][0]]),
        np.concatenate([parts[0][1], parts[1][1]]),
        n_train, {},
        train_records=tuple(names[i] for i in sorted(groups[0])),
        test_records=tuple(names[i] for i in sorted(groups[1])),
        pool_size=int(parts[0][2] + parts[1][2]))


def cut_windows(signal: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
    """(len, C) signal -> (len(starts), window, C) copies of the windows."""
    return signal[np.asarray(starts)[:, None] + np.arange(window)[None, :]]


def cut_record_windows(records: Mapping[str, np.ndarray], plan: WindowPlan,
                       window: int) -> np.ndarray:
    """The clean windows of a plan, (N, window, C) float32, in plan row order."""
    first = records[plan.record_names[0]]
    out = np.empty((plan.n_windows, window, first.shape[1]), dtype=np.float32)
    for i, name in enumerate(plan.record_names):
        rows = np.nonzero(plan.record_index == i)[0]
        if rows.size:
            out[rows] = cut_windows(records[name], plan.starts[rows], window)
    return out
