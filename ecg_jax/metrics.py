"""Per-window denoising metrics (pure jax.numpy: jit-able and vmap-able).

Arrays are batch-first: `(..., B, L, C)` (windows, samples, leads); every
metric reduces over a window's samples *and* leads together, as the protocol
scores both leads at once. Extra leading axes (e.g. a member axis) are kept,
so `window_metrics` also works on `(M, B, L, C)` directly or under `jax.vmap`.

Division by zero. Ratios are formed in the log domain with both sides
floored at the smallest normal number of the dtype (`finfo.tiny`), so every
result is finite for finite inputs:
  - perfect reconstruction (clean == denoised, clean != 0): SNR is very large
    but finite (about +400 dB in float32) and PRD is 0;
  - an all-zero clean window: SNR = 10*log10(tiny / SSD), hugely negative
    (about -380 dB in float32 for SSD ~ 1 mV^2), PRD is huge; if the denoised
    window is also all zero, SNR is 0 dB and PRD is 0;
  - cosine similarity with an all-zero clean or denoised window is 0.
A real ECG window is never all zero, so these cases only matter for padding
and toy inputs; NaN in the input still propagates to NaN (a diverged network
must stay visible).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array

METRIC_NAMES = ("snr_db", "rmse", "snr_improvement_db", "prd", "ssd", "mad", "cosine")

_WINDOW_AXES = (-2, -1)  # samples and leads of each window


def _floor(x: Array) -> Array:
    return jnp.maximum(x, jnp.finfo(x.dtype).tiny)


def _as_float(x) -> Array:
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)


def snr_db(clean: Array, estimate: Array) -> Array:
    """10*log10(sum(clean^2) / sum((clean - estimate)^2)) per window, in dB."""
    clean, estimate = _as_float(clean), _as_float(estimate)
    signal = jnp.sum(clean**2, axis=_WINDOW_AXES)
    error = jnp.sum((clean - estimate) ** 2, axis=_WINDOW_AXES)
    return 10.0 * (jnp.log10(_floor(signal)) - jnp.log10(_floor(error)))


def window_metrics(clean: Array, denoised: Array, noisy: Array) -> dict[str, Array]:
    """Every metric of METRIC_NAMES for each window: `{name: (..., B)}`.

    rmse (mV), snr_db (dB), snr_improvement_db (output minus input SNR, dB),
    prd (%), ssd (mV^2), mad (mV, max absolute error), cosine (unitless).
    """
    clean, denoised = _as_float(clean), _as_float(denoised)
    err = clean - denoised
    n_values = clean.shape[-2] * clean.shape[-1]
    ssd = jnp.sum(err**2, axis=_WINDOW_AXES)
    signal = jnp.sum(clean**2, axis=_WINDOW_AXES)
    out_snr = snr_db(clean, denoised)
    norms = jnp.sqrt(signal) * jnp.sqrt(jnp.sum(denoised**2, axis=_WINDOW_AXES))
    return {
        "snr_db": out_snr,
        "rmse": jnp.sqrt(ssd / n_values),
        "snr_improvement_db": out_snr - snr_db(clean, noisy),
        # sqrt of each side separately keeps the quotient finite for tiny signals.
        "prd": 100.0 * jnp.sqrt(ssd) / jnp.sqrt(_floor(signal)),
        "ssd": ssd,
        "mad": jnp.max(jnp.abs(err), axis=_WINDOW_AXES),
        "cosine": jnp.sum(clean * denoised, axis=_WINDOW_AXES) / _floor(norms),
    }


def mean_metrics(clean: Array, denoised: Array, noisy: Array) -> dict[str, Array]:
    """A run's score: each metric averaged over the windows (the B axis)."""
    return {k: jnp.mean(v, axis=-1) for k, v in window_metrics(clean, denoised, noisy).items()}


def to_floats(metrics: dict[str, Array]) -> dict[str, float]:
    """Scalar metrics as plain Python floats (for JSON rows), in METRIC_NAMES order."""
    return {k: float(metrics[k]) for k in METRIC_NAMES}
