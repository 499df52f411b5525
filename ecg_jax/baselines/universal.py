"""DWT with universal thresholds: the final revision's wavelet baseline (protocol.md, "final", item 9).

For one lead of one window `x` (length L = 256) the reference computes

    coeffs = pywt.wavedec(x, "db8", level=pywt.dwt_max_level(L, "db8"))   # level 4: [cA4, cD4, cD3, cD2, cD1]
    for each coefficient array c:
        sigma = median(|c|) / 0.6745
        T     = factor * sigma * sqrt(2 ln L)
        c     = pywt.threshold(c, T, mode="soft")
    x' = pywt.waverec(coeffs, "db8")

where `factor` is the approximation's own factor for cA4 (or the approximation
is zeroed: "zero") and one detail factor for every cD level.

`dwt_universal_denoise` does this for a batch `(B, L, C)` along axis 1 with the
same numpy/pywt operations; `dwt_universal_1d` is the per-window form. The two
give bitwise-identical results (pywt's axis code runs the same 1-D filter on
each slice, and a median along an axis picks the same elements; tested in
tests/test_baselines_final.py).

Precision, chosen to match the reference's per-window arithmetic: the input is
used in its own dtype (float32 for the normalised float32 windows the
reference feeds in; pywt computes a float32 input in float32, it does not
upcast), so the coefficients are float32 and `sigma` is a float32 median.
`sqrt(2 ln L)` is `np.sqrt(2 * np.log(L))`, a float64 scalar, so under numpy's
promotion rules T is float64, the soft thresholding runs in float64 and the
reconstruction (float32 zeros and float64 levels mixed) is upcast to float64
by pywt. The output is float64; the caller de-normalises and scores it. The
differences to an all-float64 computation are ~1e-7 relative, far below the
4 printed decimals, but this keeps our numbers those of the same arithmetic.

One deviation from raw pywt: `pywt.threshold` gives NaN for a coefficient that
is exactly 0 when T == 0 (0/0, e.g. factor 0 or a level whose median |c| is
0); we return 0 there, the limit and what the coefficient was.
"""

from __future__ import annotations

import math
from typing import Union

import numpy as np
import pywt

from ecg_jax.baselines.classic import check_windows
from ecg_jax.baselines.settings import per_dataset

WAVELET = "db8"
MAD_TO_SIGMA = 0.6745
ZERO = "zero"   # the approximation is zeroed instead of thresholded

Factor = Union[str, float]   # "zero" or a threshold factor >= 0

# Reference settings (approximation, details) per noise type and input SNR
# (protocol.md, "final", item 9). bw, em and ma were tuned at -4 dB only and
# are used at every SNR; emb has one setting per SNR.
REFERENCE_SETTINGS: dict[str, tuple[Factor, float] | dict[float, tuple[Factor, float]]] = {
    "bw": (0.2, 0.2),
    "em": (ZERO, 0.4),
    "ma": (0.2, 1.2),
    "emb": {-4.0: (ZERO, 0.5), -2.0: (0.2, 0.4), 0.0: (0.2, 0.3), 2.0: (0.1, 0.2), 4.0: (0.1, 0.2)},
}

# threshold_search grid (training windows only): every (approximation, detail)
# pair of these, 8 x 13 = 104 candidates. It holds every reference setting,
# "keep the approximation" (0.0: T = 0, the level passes unchanged) and
# approximation factors up to 1.0, and detail factors from light (0.1) to
# about twice the largest reference value (1.2). Ties go to the earlier pair
# in this order (approximation outer, detail inner).
APPROX_GRID: tuple[Factor, ...] = (ZERO, 0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)
DETAIL_GRID: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.2, 1.6, 2.0)


def reference_settings(noise_type: str, snr_db: float) -> tuple[Factor, float]:
    """(approximation factor or "zero", detail factor) of the reference for one dataset."""
    return per_dataset(REFERENCE_SETTINGS, noise_type, snr_db, "universal-DWT setting",
                       "; use --config.baselines.threshold_search=True")


def settings_text(approx: Factor, detail: float) -> str:
    return f"approximation {approx if approx == ZERO else f'{float(approx):g}'}, details {float(detail):g}"


def _check_factor(name: str, f: Factor) -> None:
    if f == ZERO:
        return
    if isinstance(f, str) or not math.isfinite(float(f)) or float(f) < 0:
        raise ValueError(f"{name} factor must be 'zero' or a number >= 0, got {f!r}")


def _soft(c: np.ndarray, value) -> np.ndarray:
    """pywt.threshold(c, value, "soft"), with 0 instead of NaN where c == 0 and value == 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = pywt.threshold(c, value, mode="soft")
    return np.where(c == 0, np.zeros((), out.dtype), out)


def _threshold_level(c: np.ndarray, factor: Factor, length: int, axis) -> np.ndarray:
    if factor == ZERO:
        return np.zeros_like(c)
    # float32 median for float32 coefficients, then T float64 (see the module docstring)
    sigma = np.median(np.abs(c), axis=axis, keepdims=axis is not None) / MAD_TO_SIGMA
    value = factor * sigma * np.sqrt(2 * np.log(length))
    return _soft(c, value)


def dwt_universal_1d(x, approx: Factor, detail: float, wavelet: str = WAVELET) -> np.ndarray:
    """One lead of one window, exactly the reference's per-window computation (module docstring)."""
    _check_factor("approximation", approx)
    _check_factor("detail", detail)
    x = np.asarray(x)
    length = len(x)
    level = pywt.dwt_max_level(length, wavelet)
    coeffs = pywt.wavedec(x, wavelet, level=level)
    out = [_threshold_level(c, approx if i == 0 else detail, length, None) for i, c in enumerate(coeffs)]
    return pywt.waverec(out, wavelet)[:length]


def dwt_universal_denoise(noisy, approx: Factor, detail: float, wavelet: str = WAVELET) -> np.ndarray:
    """Universal-threshold DWT of every window and lead of `noisy` (B, L, C); float64 (B, L, C).

    Bitwise equal to `dwt_universal_1d` on each `noisy[b, :, c]`.
    """
    _check_factor("approximation", approx)
    _check_factor("detail", detail)
    x = check_windows(noisy)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    length = x.shape[1]
    level = pywt.dwt_max_level(length, wavelet)
    coeffs = pywt.wavedec(x, wavelet, level=level, axis=1)
    out = [_threshold_level(c, approx if i == 0 else detail, length, 1) for i, c in enumerate(coeffs)]
    return np.asarray(pywt.waverec(out, wavelet, axis=1)[:, :length, :])


def search_grid() -> list[tuple[Factor, float]]:
    return [(a, d) for a in APPROX_GRID for d in DETAIL_GRID]
