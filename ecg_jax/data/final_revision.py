"""The windows and noise segments of the reference's final revision, drawn exactly as it draws them.

protocol.md ("final"): the reference seeds Python's `random` and NumPy's
legacy global generator with 42 before anything else and then makes its draws
in a fixed order. Private generators of the same kinds (`random.Random(seed)`,
`numpy.random.RandomState(seed)`) produce the same streams as the seeded
module-level ones, so the plan below equals the reference's draw for draw
without touching any global state:

1. records: sorted names, `sig_len // window` non-overlapping windows each;
2. `shuffle` of the record names; the first `int(n * train_fraction)` train;
3. pools record by record (shuffled order), windows by start;
   `sample(train_pool, n_train)`, then `sample(test_pool, n_test)`;
4. noise starts: for each SNR of -4, -2, 0, 2, 4, for bw, em, ma, for each
   example: `randint(0, len(noise) - window)`; then for emb at that SNR, for
   each example, one start each for bw, em, ma in that order.

The draw covers all five SNR levels whatever the config selects, so a config
with fewer levels sees the same segments as the full grid.
"""

from __future__ import annotations

import random
from typing import Mapping, Sequence

import numpy as np

from ecg_jax.config_utils import RAW_NOISE_TYPES, SNR_LEVELS
from ecg_jax.data.noise import segment_key
from ecg_jax.data.windows import WindowPlan
from ecg_jax.errors import DataError


def _randints(rs: np.random.RandomState, highs: Sequence[int], n: int) -> np.ndarray:
    """n rounds of one `rs.randint(0, high)` per entry of `highs`, in that order: (n, len(highs)).

    One vectorised call when every high is the same (the legacy generator then
    yields the same sequence as the scalar calls; tests/test_final_revision.py
    checks it), else the scalar loop.
    """
    if len(set(highs)) == 1:
        return rs.randint(0, highs[0], size=(n, len(highs))).astype(np.int64)
    return np.array([[rs.randint(0, h) for h in highs] for _ in range(n)], dtype=np.int64).reshape(n, len(highs))


def plan_final(record_lengths: Mapping[str, int], noise_lengths: Mapping[str, int], *, window: int,
               n_train: int, n_test: int, train_fraction: float, data_seed: int) -> WindowPlan:
    """The final revision's examples (train rows first, in the order drawn) and its noise starts.

    `noise_starts` holds one (N,) array per bank key: "bw@-4", ..., "emb.bw@-4", ...
    """
    names = sorted(record_lengths)
    py = random.Random(data_seed)
    rs = np.random.RandomState(data_seed)
    shuffled = list(names)
    py.shuffle(shuffled)
    n_train_records = int(len(shuffled) * train_fraction)
    train_records, test_records = shuffled[:n_train_records], shuffled[n_train_records:]
    if not train_records or not test_records:
        raise DataError(f"the final revision splits {len(names)} record(s) {train_fraction:g}/"
                        f"{1 - train_fraction:g} by record, which leaves no "
                        f"{'training' if not train_records else 'test'} record; use more records")
    index_of = {n: i for i, n in enumerate(names)}

    def pool(records: list[str]) -> list[tuple[int, int]]:
        return [(index_of[r], k * window) for r in records for k in range(int(record_lengths[r]) // window)]

    train_pool, test_pool = pool(train_records), pool(test_records)
    for label, p, k in (("training", train_pool, n_train), ("test", test_pool, n_test)):
        if k > len(p):
            raise DataError(f"the final revision draws {k} {label} windows but its {label} records give only "
                            f"{len(p)}; lower data.n_windows or add records")
    chosen = py.sample(train_pool, n_train) + py.sample(test_pool, n_test)
    n = len(chosen)

    for t in RAW_NOISE_TYPES:
        if int(noise_lengths[t]) <= window:
            raise DataError(f"noise record {t} has {noise_lengths[t]} samples; it needs more than one window")
    highs = {t: int(noise_lengths[t]) - window for t in RAW_NOISE_TYPES}
    noise_starts: dict[str, np.ndarray] = {}
    for snr in SNR_LEVELS:
        for t in RAW_NOISE_TYPES:
            noise_starts[segment_key(t, snr)] = _randints(rs, [highs[t]], n)[:, 0]
        emb = _randints(rs, [highs[t] for t in RAW_NOISE_TYPES], n)
        for j, t in enumerate(RAW_NOISE_TYPES):
            noise_starts[segment_key(t, snr, of_emb=True)] = emb[:, j]
    return WindowPlan(
        record_names=tuple(names),
        record_index=np.array([r for r, _ in chosen], dtype=np.int32),
        starts=np.array([s for _, s in chosen], dtype=np.int64),
        n_train=n_train, noise_starts=noise_starts,
        train_records=tuple(train_records), test_records=tuple(test_records),
        pool_size=len(train_pool) + len(test_pool))
