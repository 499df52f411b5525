"""The classical FFT and DWT denoisers of the reference, plus threshold search.

Both work on raw (not normalised) noisy windows, batch-first `(B, L, C)`
float arrays in mV, each window and lead on its own, and return numpy arrays
of the same shape and dtype (computed in float64).

DWT thresholding follows the reference exactly: each detail level is passed
through `pywt.threshold(d, threshold * np.max(d), mode="soft")`, where
`np.max` is the *signed* maximum of that level's coefficients. pywt's soft rule
is `d * max(1 - value / |d|, 0)`, so:
  - value > 0: ordinary soft thresholding, |d| <= value -> 0, else shrink by value;
  - value < 0 (every coefficient of the level is negative): the factor is
    1 + |value| / |d| > 1, so each coefficient moves *away* from zero by |value|
    (d - |value| for d < 0): the level is amplified, not denoised. We keep this
    quirk because it is what the reference's numbers contain.
  - value == 0: coefficients pass unchanged.
The one deviation: pywt returns NaN for a coefficient that is exactly 0 when
value <= 0 (0/0 or 0*inf); we return 0 there, which is the limit for value == 0
and keeps an all-zero window all zero instead of NaN.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Sequence

import jax
import numpy as np
import pywt

from ecg_jax.errors import ConfigError
from ecg_jax.metrics import mean_metrics, to_floats

FFT_THRESHOLD = 0.0012  # reference values
DWT_THRESHOLD = 0.074
DWT_WAVELET = "db8"

# Default grids for the threshold search: the reference value plus a roughly
# logarithmic sweep around it, from "keep everything" (0) to "keep little"
# (on record 100 with em noise at -4 dB the training optimum is ~0.5 for FFT
# and ~0.2 for DWT). Both grids end at 1.0: FFT then keeps only the largest
# coefficient(s) and DWT zeroes every detail level whose maximum is positive.
FFT_THRESHOLD_GRID = (0.0, 0.0003, 0.0006, 0.0012, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16,
                      0.3, 0.5, 0.7, 1.0)
DWT_THRESHOLD_GRID = (0.0, 0.01, 0.02, 0.037, 0.074, 0.1, 0.15, 0.2, 0.3, 0.45, 0.6, 0.8, 1.0)

# Compiled once per window shape: eager jax.numpy dispatch is ~40x slower on 8000 windows.
_mean_metrics = jax.jit(mean_metrics)


def _check_windows(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"expected batch-first windows (B, L, C), got shape {x.shape}")
    return x


def fft_denoise(noisy, threshold: float = FFT_THRESHOLD) -> np.ndarray:
    """Zero FFT coefficients below `threshold * max |coefficient|` (per window and lead).

    With threshold 0 nothing is zeroed and the output equals the input up to
    FFT round-off.
    """
    dtype = np.asarray(noisy).dtype
    x = _check_windows(noisy)
    spectrum = np.fft.fft(x, axis=1)
    magnitude = np.abs(spectrum)
    keep = magnitude >= threshold * magnitude.max(axis=1, keepdims=True)
    out = np.fft.ifft(np.where(keep, spectrum, 0.0), axis=1).real
    return out.astype(dtype if np.issubdtype(dtype, np.floating) else np.float64)


def soft_threshold_signed_max(coeffs: np.ndarray, threshold: float, axis: int = 1) -> np.ndarray:
    """pywt.threshold(coeffs, threshold * np.max(coeffs), "soft") along `axis`, vectorised.

    The maximum is taken per window and lead (over `axis`); see the module
    docstring for the negative-maximum behaviour and the zero-coefficient case.
    """
    value = threshold * np.max(coeffs, axis=axis, keepdims=True)
    magnitude = np.abs(coeffs)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.clip(1.0 - value / magnitude, 0.0, None)
    return np.where(magnitude > 0, coeffs * factor, 0.0)


def dwt_denoise(noisy, threshold: float = DWT_THRESHOLD, wavelet: str = DWT_WAVELET,
                level: int | None = None) -> np.ndarray:
    """Soft-threshold every detail level at `threshold * max(level)`; approximation untouched.

    `level=None` uses pywt.dwt_max_level for the window length (4 for 256
    samples with db8). The reconstruction is cropped to the input length.
    """
    dtype = np.asarray(noisy).dtype
    x = _check_windows(noisy)
    length = x.shape[1]
    if level is None:
        level = pywt.dwt_max_level(length, pywt.Wavelet(wavelet).dec_len)
    coeffs = pywt.wavedec(x, wavelet, level=level, axis=1)
    coeffs = [coeffs[0]] + [soft_threshold_signed_max(d, threshold, axis=1) for d in coeffs[1:]]
    out = pywt.waverec(coeffs, wavelet, axis=1)[:, :length, :]
    return out.astype(dtype if np.issubdtype(dtype, np.floating) else np.float64)


@dataclass(frozen=True)
class Baseline:
    """A classical denoiser: `denoise(noisy, threshold) -> denoised`, with its defaults."""

    display_name: str
    denoise: Callable[..., np.ndarray]
    default_threshold: float
    threshold_grid: tuple[float, ...]


BASELINES: dict[str, Baseline] = {
    "fft": Baseline("FFT", fft_denoise, FFT_THRESHOLD, FFT_THRESHOLD_GRID),
    "dwt": Baseline("DWT", dwt_denoise, DWT_THRESHOLD, DWT_THRESHOLD_GRID),
}


def get_baseline(method: str) -> Baseline:
    if method not in BASELINES:
        raise ConfigError(f"unknown baseline {method!r}; valid baselines: {', '.join(BASELINES)}")
    return BASELINES[method]


def score_baseline(method: str, clean, noisy, threshold: float | None = None) -> dict[str, float]:
    """Denoise `noisy` (B, L, C) with a baseline and score it against `clean`.

    `threshold=None` uses the reference threshold. Returns METRIC_NAMES -> float
    (means over the windows), the same numbers a results row stores.
    """
    baseline = get_baseline(method)
    t = baseline.default_threshold if threshold is None else float(threshold)
    denoised = baseline.denoise(noisy, t)
    return to_floats(_mean_metrics(np.asarray(clean, np.float32), denoised.astype(np.float32),
                                   np.asarray(noisy, np.float32)))


def search_threshold(method: str, clean_train, noisy_train,
                     grid: Sequence[float] | None = None) -> float:
    """The grid threshold with the best mean output SNR on the given (training) windows.

    Only pass training windows: the choice must not see the test set. Ties go
    to the earliest grid value; a threshold whose score is NaN never wins.
    """
    baseline = get_baseline(method)
    grid = tuple(baseline.threshold_grid if grid is None else grid)
    if not grid:
        raise ConfigError(f"empty threshold grid for baseline {method!r}")
    best_t, best_snr = grid[0], -np.inf
    for t in grid:
        snr = score_baseline(method, clean_train, noisy_train, t)["snr_db"]
        if snr > best_snr:  # False for NaN
            best_t, best_snr = t, snr
    return float(best_t)


def score_baselines_on_grid(config, prepared, methods: Sequence[str] = ("fft", "dwt")) -> list[dict]:
    """Result rows of `methods` on every (noise type, SNR) of a resolved config.

    Thresholds are the config's reference ones, or with
    `baselines.threshold_search` chosen per dataset on its training windows only
    (and recorded in the row). Rows use the shared results schema, seed None.
    """
    from ecg_jax.results import make_row

    for m in methods:
        get_baseline(m)  # unknown names fail before any work
    b = config.baselines
    reference = {"fft": b.fft_threshold, "dwt": b.dwt_threshold}
    train, test = prepared.train, prepared.test
    rows = []
    for noise_type in config.noise_types:
        for snr in config.snr_levels:
            noisy_test = test.noisy(noise_type, snr)
            noisy_train = train.noisy(noise_type, snr) if b.threshold_search else None
            for m in methods:
                threshold = (search_threshold(m, train.clean, noisy_train) if b.threshold_search
                             else reference.get(m, get_baseline(m).default_threshold))
                rows.append(make_row(
                    method=m, noise_type=noise_type, snr_db=snr, seed=None, split=config.data.split,
                    source=prepared.source, metrics=score_baseline(m, test.clean, noisy_test, threshold),
                    threshold=float(threshold), threshold_search=bool(b.threshold_search),
                    n_test=int(prepared.n_test)))
    return rows


def run_baselines(config, workdir: str, methods=("fft", "dwt")) -> list[dict]:
    """Score `methods` on every dataset of `config`; append and return the result rows.

    Writes <workdir>/data_card.json and appends the rows to <workdir>/results.jsonl.
    """
    from ecg_jax.config_utils import resolve_config
    from ecg_jax.datasets import data_card, prepare_data, write_data_card
    from ecg_jax.results import append_rows

    config = resolve_config(config)
    prepared = prepare_data(config)
    os.makedirs(workdir, exist_ok=True)
    write_data_card(data_card(prepared, config), workdir)
    rows = score_baselines_on_grid(config, prepared, methods)
    append_rows(os.path.join(workdir, "results.jsonl"), rows)
    return rows
