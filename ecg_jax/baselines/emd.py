"""EMD baseline of the final revision (protocol.md, "final", item 9): PyEMD, sum of a slice of the IMF rows.

For one lead of one window `x` the reference computes

    imfs = EMD().emd(x)                      # PyEMD (package EMD-signal), default settings
    x'   = np.sum(imfs[start:stop], axis=0)  # the rows: IMFs, then the residue when it is not ~0

with a fixed slice per dataset (REFERENCE_SLICES). The number of rows varies
from window to window; a slice is applied exactly as numpy slicing does, so a
window whose decomposition has fewer rows than the slice needs contributes
what numpy gives: `imfs[1:-4]` of a 4-row decomposition is empty and sums to
zeros (np.sum of a (0, L) array along axis 0), `imfs[0:-1]` of a 1-row one is
empty too. That is the reference's behaviour, kept on purpose.

Precision: the input is passed in its own dtype (float32 for the normalised
float32 windows, as the reference passes them): PyEMD sifts in the signal's
dtype, and float32 vs float64 sifting can change the decomposition itself.
PyEMD returns float64 rows; the sum is float64.

EMD costs ~10 ms per 256-sample lead in Python, so `emd_denoise` spreads the
leads over a process pool (fork, one process per usable core); the output
order is the input order whatever the pool size, and a lead's result does not
depend on which process computed it (EMD is deterministic), so the pool gives
exactly the serial result.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import warnings
from typing import Optional

import numpy as np

from ecg_jax.baselines.classic import check_windows
from ecg_jax.baselines.settings import per_dataset

ImfSlice = tuple[Optional[int], Optional[int]]   # (start, stop) of the IMF rows; None = open end

# Reference slices (protocol.md): emb per SNR; bw, em, ma tuned at -4 dB, used at every SNR.
REFERENCE_SLICES: dict[str, ImfSlice | dict[float, ImfSlice]] = {
    "bw": (0, -1),
    "em": (0, -4),
    "ma": (1, -1),
    "emb": {-4.0: (1, -4), -2.0: (0, -3), 0.0: (0, -2), 2.0: (0, -1), 4.0: (None, None)},
}


def reference_slice(noise_type: str, snr_db: float) -> ImfSlice:
    """The reference's IMF slice (start, stop) for one dataset."""
    return per_dataset(REFERENCE_SLICES, noise_type, snr_db, "EMD slice")


def slice_text(s: ImfSlice) -> str:
    """"[1:-4]" for (1, -4); "[:]" for all rows."""
    start, stop = s
    return f"[{'' if start is None else start}:{'' if stop is None else stop}]"


def emd_rows(signal: np.ndarray) -> np.ndarray:
    """`EMD().emd(signal)` with default settings: (rows, L) float64, IMFs then the residue."""
    from PyEMD import EMD

    return EMD().emd(signal)


def sum_rows(rows: np.ndarray, imf_slice: ImfSlice) -> np.ndarray:
    """np.sum(rows[start:stop], axis=0): zeros when the slice selects no row (numpy slicing)."""
    return np.sum(rows[slice(*imf_slice)], axis=0)


def emd_denoise_1d(signal, imf_slice: ImfSlice) -> np.ndarray:
    """One lead of one window: the sum of the sliced rows of its decomposition, float64 (L,)."""
    signal = np.ascontiguousarray(signal)
    return np.asarray(sum_rows(emd_rows(signal), imf_slice), dtype=np.float64)


def _emd_many(signals: np.ndarray, imf_slice: ImfSlice) -> np.ndarray:
    return np.stack([emd_denoise_1d(s, imf_slice) for s in signals]) if len(signals) else \
        np.zeros((0, signals.shape[-1]))


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask; os.cpu_count() where that is unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def emd_denoise(noisy, imf_slice: ImfSlice, processes: int | None = None) -> np.ndarray:
    """EMD of every window and lead of `noisy` (B, L, C): float64 (B, L, C).

    `processes=None` uses every usable core; 1 runs serially in this process.
    Leads are dealt to the workers in contiguous chunks (a few per worker so
    slow leads even out) and put back in input order.
    """
    x = check_windows(noisy)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    b, length, c = x.shape
    signals = np.ascontiguousarray(np.moveaxis(x, 2, 1).reshape(b * c, length))  # (B*C, L), window-major
    n = len(signals)
    processes = usable_cores() if processes is None else int(processes)
    processes = max(1, min(processes, n))
    if processes == 1:
        out = _emd_many(signals, imf_slice)
    else:
        n_chunks = min(n, processes * 8)
        chunks = np.array_split(signals, n_chunks)
        work = functools.partial(_emd_many, imf_slice=imf_slice)
        with warnings.catch_warnings():
            # JAX warns at every fork once it has started threads; the workers
            # run only numpy/scipy/PyEMD (never JAX), so the fork is safe here.
            warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
            with multiprocessing.get_context("fork").Pool(processes) as pool:
                parts = pool.map(work, chunks, chunksize=1)
        out = np.concatenate(parts, axis=0)
    return out.reshape(b, c, length).transpose(0, 2, 1).copy()
