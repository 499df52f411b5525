"""Per-channel normalisation, and a network run on mV windows through it.

Every network sees its input normalised with its dataset's training statistics
(mean and std per channel, `data.noise.channel_stats`) and its output is
de-normalised back to mV. `apply_in_mv` is that sequence, written once for
everything that runs a trained network on mV windows: scoring
(`train.scoring`), the fresh-noise validation (`train.fresh_noise`) and the
denoiser's ensemble (`denoise.core`). Pure jax.numpy, importing nothing of
ecg_jax, so the denoiser loads it without the data pipeline.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


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


def apply_in_mv(model, variables, x: Array, mean: Array, std: Array, plus: Array | None = None) -> Array:
    """The network on mV windows `x` (..., L, C), in eval mode, output in mV:

        model.apply(variables, (x - mean) / std, train=False) * std + mean

    with a zero std read as 1 (`normalize`). `plus`, an ensemble's running sum, is
    added to the scaled output before the mean, (plus + out * std) + mean: the
    order the denoiser has always summed its members in (float addition is not
    associative). Traced inside the callers' jit.
    """
    s = _safe_std(std)
    out = model.apply(variables, (x - mean) / s, train=False) * s
    return (out if plus is None else plus + out) + mean
