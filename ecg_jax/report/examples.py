"""The example windows a training workdir keeps (examples.npz), read for the example figures.

Training and `ecg-jax evaluate` write, per workdir (train/scoring.py
`write_examples`): "clean" (L, C), "noisy/<noise>/<snr>" and
"denoised/<noise>/<snr>/<seed>", all of the workdir's one method. Reading
never fails on a bad file: it warns and skips it, so one damaged workdir does
not stop the tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ecg_jax.config_utils import NOISE_TYPES
from ecg_jax.results import display_name


@dataclass
class Example:
    """One test window with its noisy input and the outputs of one or more methods."""

    clean: np.ndarray                  # (L, C) mV
    noisy: np.ndarray                  # (L, C) mV
    outputs: dict[str, np.ndarray]     # display name -> (L, C)
    noise_type: str
    snr_db: float
    fs: float = 360.0                  # examples.npz records no rate: MIT-BIH's


def load_examples(path: str, method: str | None = None, prefer: tuple[str, float] = ("emb", 0.0),
                  warn=lambda msg: None, label: str | None = None) -> list[Example]:
    """The example window of an examples.npz; never raises for a bad file (returns [] and warns).

    The file's arrays are all of one method, which examples.npz does not name:
    it must be given as `method` (an id). Only one dataset is taken: `prefer`
    if present, else the first in protocol order, with the lowest seed's
    output. Arrays whose shape differs from "clean" are skipped with a warning. `label`: the method's
    name in the figure (default display_name(method); your own network's comes from its rows).
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            if "clean" not in z.files:
                warn(f"{path}: no 'clean' array; skipped")
                return []
            ex = _read_workdir_examples(z, path, method, prefer, warn, label)
    except (OSError, ValueError, KeyError) as e:
        warn(f"{path}: unreadable examples file ({e}); skipped")
        return []
    return [ex] if ex is not None else []


def _check_shape(name: str, arr: np.ndarray, shape: tuple, path: str, warn) -> bool:
    if arr.shape != shape or not np.issubdtype(arr.dtype, np.number):
        warn(f"{path}: {name!r} has shape {arr.shape}, expected {shape}; skipped")
        return False
    return True


def _read_workdir_examples(z, path: str, method: str | None, prefer, warn,
                           label: str | None = None) -> Example | None:
    clean = np.asarray(z["clean"], float)
    datasets = []
    for k in z.files:
        parts = k.split("/")
        if parts[0] == "noisy" and len(parts) == 3:
            try:
                datasets.append((parts[1], float(parts[2]), k))
            except ValueError:
                continue
    if not datasets:
        warn(f"{path}: no 'noisy/<noise>/<snr>' window; skipped")
        return None
    if method is None:
        warn(f"{path}: training-workdir layout but the method is unknown (results of one method "
             f"expected beside it); skipped")
        return None
    order = {t: i for i, t in enumerate(NOISE_TYPES)}
    datasets.sort(key=lambda d: (d[:2] != (prefer[0], float(prefer[1])), order.get(d[0], 99), d[1]))
    nt, snr, noisy_key = datasets[0]
    prefix = f"denoised/{noisy_key.split('/', 1)[1]}/"
    seeds = sorted((k for k in z.files if k.startswith(prefix)), key=lambda k: _seed_of(k))
    if not _check_shape(noisy_key, z[noisy_key], clean.shape, path, warn):
        return None
    outputs = {}
    if seeds and _check_shape(seeds[0], z[seeds[0]], clean.shape, path, warn):
        outputs[label or display_name(method)] = np.asarray(z[seeds[0]], float)
    return Example(clean, np.asarray(z[noisy_key], float), outputs, nt, snr)


def _seed_of(key: str) -> float:
    try:
        return float(key.rsplit("/", 1)[1])
    except ValueError:
        return math.inf


def merge_examples(examples: list[Example]) -> list[Example]:
    """Merge examples of the same dataset and the same clean/noisy window into one figure each
    (the workdirs of several methods share their first test window)."""
    merged: list[Example] = []
    for ex in examples:
        for m in merged:
            if ((m.noise_type, m.snr_db) == (ex.noise_type, ex.snr_db) and m.clean.shape == ex.clean.shape
                    and np.allclose(m.clean, ex.clean) and np.allclose(m.noisy, ex.noisy)):
                m.outputs.update(ex.outputs)
                break
        else:
            merged.append(Example(ex.clean, ex.noisy, dict(ex.outputs), ex.noise_type, ex.snr_db, ex.fs))
    return merged
