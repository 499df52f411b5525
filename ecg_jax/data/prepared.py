"""Prepared data: the clean windows and a bank of noise segments, from which every dataset is mixed.

A dataset is one (noise type, input SNR). All 20 datasets of a config share
the clean windows; their noisy windows are mixed on demand from stored noise
segments by the revision's recipe (`noise.noise_recipe`): under "paper" and
"first" every SNR reuses the same bw/em/ma segment of a window, under "final"
every (noise type, SNR) has segments of its own. The segments are not stored:
the bank keeps the three NSTDB records and the start of every segment, and
cuts a segment set when it is first asked for. Rows are train first:
[0, n_train) train, [n_train, N) test.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator, Mapping

import jax.numpy as jnp
import numpy as np

from ecg_jax.config_utils import MIXED_NOISE, NOISE_TYPES
from ecg_jax.data import noise as noise_lib
from ecg_jax.data.windows import cut_windows


class SegmentBank(Mapping[str, np.ndarray]):
    """Noise segments by bank key ("bw", "bw@-4", "emb.bw@-4", ...), each (n, L, C) float32.

    Cut from the NSTDB records at the stored starts on first access and kept.
    """

    def __init__(self, records: Mapping[str, np.ndarray], starts: Mapping[str, np.ndarray], window: int,
                 materialised: Mapping[str, np.ndarray] | None = None):
        self.records, self.starts, self.window = records, starts, window
        # Entries that are not cuts of a record (the training mixture's scaled noise).
        self.materialised = dict(materialised or {})
        self._cut: dict[str, np.ndarray] = {}

    def __getitem__(self, key: str) -> np.ndarray:
        if key in self.materialised:
            return self.materialised[key]
        if key not in self._cut:
            record = self.records[noise_lib.raw_type_of(key)]
            self._cut[key] = cut_windows(record, self.starts[key], self.window).astype(np.float32, copy=False)
        return self._cut[key]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.starts) + list(self.materialised))

    def __len__(self) -> int:
        return len(self.starts) + len(self.materialised)

    def rows(self, rows: slice) -> "SegmentBank":
        return SegmentBank(self.records, {k: v[rows] for k, v in self.starts.items()}, self.window,
                           {k: v[rows] for k, v in self.materialised.items()})


@dataclasses.dataclass(frozen=True, eq=False)
class WindowSet:
    """Clean windows, their noise segment bank (row i pairs with row i) and the mixing rule."""

    clean: np.ndarray                 # (n, L, 2) float32 mV
    noise: SegmentBank
    window_records: np.ndarray        # (n,) str
    window_starts: np.ndarray         # (n,) int
    revision: str = "paper"
    emb_mixing: str = "sum"

    def __len__(self) -> int:
        return int(self.clean.shape[0])

    def recipe(self, noise_type: str, snr_db: float) -> noise_lib.NoiseRecipe:
        return noise_lib.noise_recipe(noise_type, snr_db, revision=self.revision, emb_mixing=self.emb_mixing)

    def noisy(self, noise_type: str, snr_db: float) -> np.ndarray:
        """The noisy windows of one dataset, (n, L, 2) float32."""
        r = self.recipe(noise_type, snr_db)
        components = jnp.asarray(np.stack([self.noise[k] for k in r.components]))
        return np.asarray(noise_lib.mix_components(
            jnp.asarray(self.clean), components, jnp.ones(len(r.components), jnp.float32),
            jnp.float32(snr_db), jnp.float32(r.divisor), r.scale_each, r.prescaled))


@dataclasses.dataclass(frozen=True, eq=False)
class PreparedData(WindowSet):
    """Everything the datasets are computed from, plus where it came from."""

    source: str = "physionet"         # "physionet" | "synthetic"
    n_train: int = 0
    record_names: tuple[str, ...] = ()
    split: str = "reference"
    train_records: tuple[str, ...] = ()   # inter_patient only
    test_records: tuple[str, ...] = ()
    pool_size: int = 0
    data_dir: str | None = None
    cache_key: str = ""
    cache_path: str = ""
    cache_hit: bool = False
    _stats: dict = dataclasses.field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def noise_starts(self) -> Mapping[str, np.ndarray]:
        return self.noise.starts

    @property
    def n_windows(self) -> int:
        return len(self)

    @property
    def n_test(self) -> int:
        return len(self) - self.n_train

    def rows(self, rows: slice) -> WindowSet:
        """The windows of `rows` (e.g. slice(n_train, n_train + 1): the first test window)."""
        return WindowSet(self.clean[rows], self.noise.rows(rows), self.window_records[rows],
                         self.window_starts[rows], self.revision, self.emb_mixing)

    @property
    def train(self) -> WindowSet:
        return self.rows(slice(0, self.n_train))

    @property
    def test(self) -> WindowSet:
        return self.rows(slice(self.n_train, None))

    def add_mixture(self, snr_levels) -> None:
        """The training mixture ("mixed"): window i gets noise type and SNR number i mod 20 of
        NOISE_TYPES x snr_levels (the rows are in random order already, so every
        combination gets a random, equal share of train and of test windows).
        Stored as the scaled noise each window receives, mixed by the usual recipes."""
        combos = [(t, s) for t in NOISE_TYPES for s in snr_levels]
        added = np.empty_like(self.clean)
        for c, (noise_type, snr_db) in enumerate(combos):
            rows = slice(c, None, len(combos))
            part = self.rows(rows)
            added[rows] = part.noisy(noise_type, snr_db) - part.clean
        self.noise.materialised[MIXED_NOISE] = added
        self._stats.clear()

    def dataset_stats(self, noise_type: str, snr_db: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(per-window input SNR (N,), mean (C,), std (C,)) of one dataset.

        mean/std: per channel over the TRAINING noisy windows, the protocol's
        normalisation; the one source of these numbers for training,
        evaluation, baselines and the data card.
        """
        key = (noise_type, float(snr_db))
        if key not in self._stats:
            noisy = self.noisy(noise_type, snr_db)
            mean, std = noise_lib.channel_stats(jnp.asarray(noisy[:self.n_train]))
            snr = noise_lib.input_snr_db(jnp.asarray(self.clean), jnp.asarray(noisy))
            self._stats[key] = (np.asarray(snr), np.asarray(mean), np.asarray(std))
        return self._stats[key]

    def norm_stats(self, noise_type: str, snr_db: float) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel (mean, std) of the training noisy windows of one dataset, (2,) each."""
        _, mean, std = self.dataset_stats(noise_type, snr_db)
        return mean, std
