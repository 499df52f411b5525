"""Noise mixing at a target input SNR and per-channel normalisation.

Pure jax.numpy, batch-first: a window is (L, C) and any leading batch axes
are allowed, (..., L, C). Powers are taken over each whole window, both
channels together, as the protocol does. `snr_db` may be a scalar or an
array with the batch shape (...), so many SNR levels can be mixed in one
call or under vmap.
"""

from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp

from ecg_jax.config_utils import NOISE_TYPES, RAW_NOISE_TYPES
from ecg_jax.errors import ConfigError

Array = jax.Array


def noise_for_type(segments: Mapping[str, Array], noise_type: str) -> Array:
    """The raw noise of `noise_type`; "emb" is bw + em + ma (scaled later as one noise)."""
    if noise_type == "emb":
        return segments["bw"] + segments["em"] + segments["ma"]
    if noise_type in RAW_NOISE_TYPES:
        return segments[noise_type]
    raise ConfigError(f"unknown noise type {noise_type!r}; valid noise types: {', '.join(NOISE_TYPES)}")


def _flat_windows(x: Array) -> Array:
    """(..., L, C) -> (..., L*C): one contiguous reduction axis per window, which
    XLA's CPU backend reduces far faster than the two axes with C = 2 minor."""
    return x.reshape(x.shape[:-2] + (-1,))


def _window_power(x: Array) -> Array:
    """Mean square over each window, keeping (1, 1) window axes for broadcasting."""
    return jnp.mean(jnp.square(_flat_windows(x)), axis=-1)[..., None, None]


@jax.jit
def mix_at_snr(clean: Array, noise: Array, snr_db: Array | float) -> Array:
    """`clean + scale * noise` with scale chosen so the window's input SNR is `snr_db`.

    scale = sqrt(Pc / (Pn * 10**(snr/10))). A zero-power noise window gets
    scale 0: the division uses a safe denominator and `where` picks 0, so no
    inf/NaN appears even in the unselected branch (which matters for gradients).
    """
    p_clean = _window_power(clean)
    p_noise = _window_power(noise)
    snr = jnp.asarray(snr_db, dtype=clean.dtype)[..., None, None]
    has_noise = p_noise > 0
    safe_denominator = jnp.where(has_noise, p_noise, 1.0) * jnp.power(10.0, snr / 10.0)
    scale = jnp.where(has_noise, jnp.sqrt(p_clean / safe_denominator), 0.0)
    return clean + scale.astype(clean.dtype) * noise


@jax.jit
def input_snr_db(clean: Array, noisy: Array) -> Array:
    """Per-window SNR of `noisy` against `clean`, shape (...).

    10 * log10(sum(clean**2) / sum((noisy - clean)**2)); +inf when the window
    has no noise, NaN only when both powers are zero.
    """
    signal = jnp.sum(jnp.square(_flat_windows(clean)), axis=-1)
    residual = jnp.sum(jnp.square(_flat_windows(noisy - clean)), axis=-1)
    return 10.0 * (jnp.log10(signal) - jnp.log10(residual))


@jax.jit
def channel_stats(x: Array) -> tuple[Array, Array]:
    """Per-channel mean and std over all windows and time: two (C,) arrays.

    ddof=0 (population std), numpy's default and what the reference's numpy
    statistics give; with thousands of windows x 256 samples per channel the
    difference to ddof=1 is far below float32 noise anyway. Two-pass (mean
    first, then mean squared deviation) for accuracy in float32.
    """
    per_channel = jnp.moveaxis(x, -1, 0).reshape(x.shape[-1], -1)  # (C, everything else)
    mean = jnp.mean(per_channel, axis=-1)
    std = jnp.sqrt(jnp.mean(jnp.square(per_channel - mean[:, None]), axis=-1))
    return mean, std


def _safe_std(std: Array) -> Array:
    # A constant channel has std 0; dividing by 1 instead keeps it finite and
    # normalize/denormalize exact inverses of each other.
    return jnp.where(std > 0, std, 1.0)


@jax.jit
def normalize(x: Array, mean: Array, std: Array) -> Array:
    """(x - mean) / std per channel (last axis)."""
    return (x - mean) / _safe_std(std)


@jax.jit
def denormalize(x: Array, mean: Array, std: Array) -> Array:
    """x * std + mean per channel: the inverse of `normalize`."""
    return x * _safe_std(std) + mean
