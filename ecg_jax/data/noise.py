"""Noise mixing at a target input SNR and per-channel normalisation.

Pure jax.numpy, batch-first: a window is (L, C) and any leading batch axes
are allowed, (..., L, C). Powers are taken over each whole window, both
channels together, as the protocol does. `snr_db` may be a scalar or an
array with the batch shape (...), so many SNR levels can be mixed in one
call or under vmap.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from ecg_jax.config_utils import MIXED_NOISE, NOISE_TYPES, RAW_NOISE_TYPES
from ecg_jax.errors import ConfigError
from ecg_jax.normalization import denormalize, normalize  # noqa: F401  (re-exported: callers import them here)

Array = jax.Array


def _flat_windows(x: Array) -> Array:
    """(..., L, C) -> (..., L*C): one contiguous reduction axis per window, which
    XLA's CPU backend reduces far faster than the two axes with C = 2 minor."""
    return x.reshape(x.shape[:-2] + (-1,))


def _window_power(x: Array) -> Array:
    """Mean square over each window, keeping (1, 1) window axes for broadcasting."""
    return jnp.mean(jnp.square(_flat_windows(x)), axis=-1)[..., None, None]


def _snr_scale(p_clean: Array, p_noise: Array, snr_db: Array | float, dtype) -> Array:
    """sqrt(Pc / (Pn * 10**(snr/10))), 0 where the noise has no power.

    The division uses a safe denominator and `where` picks 0, so no inf/NaN
    appears even in the unselected branch (which matters for gradients).
    """
    snr = jnp.asarray(snr_db, dtype=dtype)[..., None, None]
    has_noise = p_noise > 0
    safe_denominator = jnp.where(has_noise, p_noise, 1.0) * jnp.power(10.0, snr / 10.0)
    return jnp.where(has_noise, jnp.sqrt(p_clean / safe_denominator), 0.0).astype(dtype)


@jax.jit
def mix_at_snr(clean: Array, noise: Array, snr_db: Array | float) -> Array:
    """`clean + scale * noise` with scale chosen so the window's input SNR is `snr_db`."""
    scale = _snr_scale(_window_power(clean), _window_power(noise), snr_db, clean.dtype)
    return clean + scale * noise


@dataclasses.dataclass(frozen=True)
class NoiseRecipe:
    """How one (noise type, SNR) dataset is made from stored noise segments.

    components: keys of the segment bank (PreparedData.noise) that are combined;
    divisor: their sum is divided by it (3 where a revision averages the three
    noises, 1 for the plain sum); scale_each: each component is scaled to the
    SNR on its own before they are combined ("first" revision emb), instead of
    scaling the combination as one noise; prescaled: the components hold noise
    already scaled (the training mixture), added as they are.
    """

    components: tuple[str, ...]
    divisor: float = 1.0
    scale_each: bool = False
    prescaled: bool = False


def segment_key(raw_type: str, snr_db: float | None = None, *, of_emb: bool = False) -> str:
    """Bank key of a raw noise segment set: "bw" (shared by every SNR, "paper"/"first"),
    "bw@-4" (drawn for one SNR, "final"), "emb.bw@-4" (the bw part of final emb at -4 dB)."""
    key = f"emb.{raw_type}" if of_emb else raw_type
    return key if snr_db is None else f"{key}@{float(snr_db):g}"


def raw_type_of(key: str) -> str:
    """The NSTDB record a bank key cuts from: "emb.bw@-4" -> "bw"."""
    return key.split("@")[0].rsplit(".", 1)[-1]


def noise_recipe(noise_type: str, snr_db: float, *, revision: str = "paper",
                 emb_mixing: str = "sum") -> NoiseRecipe:
    """The recipe of one dataset under a protocol revision (protocol.md, "Revisions").

    paper: the segments of window i are shared by every SNR; emb = bw+em+ma scaled as one.
    first: as paper, but emb = mean of the three noises, each scaled on its own.
    final: every (noise type, SNR) has its own segments; emb = (bw+em+ma)/3 scaled as one.
    """
    if noise_type == MIXED_NOISE:
        return NoiseRecipe((MIXED_NOISE,), prescaled=True)
    if noise_type not in NOISE_TYPES:
        raise ConfigError(f"unknown noise type {noise_type!r}; valid noise types: {', '.join(NOISE_TYPES)}")
    per_snr = snr_db if revision == "final" else None
    if noise_type != "emb":
        return NoiseRecipe((segment_key(noise_type, per_snr),))
    keys = tuple(segment_key(t, per_snr, of_emb=revision == "final") for t in RAW_NOISE_TYPES)
    scale_each = emb_mixing == "mean_of_scaled"
    return NoiseRecipe(keys, 3.0 if (revision == "final" or scale_each) else 1.0, scale_each)


@jax.jit
def mix_components(clean: Array, components: Array, weights: Array, snr_db: Array | float,
                   divisor: Array | float, scale_each: Array | bool, prescaled: Array | bool = False) -> Array:
    """The noisy windows of a recipe: the one mixing rule, used on the host and inside the step.

    clean (..., L, C); components (K, ..., L, C) stored segments; weights (K,)
    pick the recipe's components (1) out of a bank (0 elsewhere); divisor,
    scale_each and prescaled as NoiseRecipe. Every branch is computed and `where`
    picks one, so members of different recipes share one compiled program.
    """
    combined = jnp.tensordot(weights, components, axes=1) / divisor
    as_one = mix_at_snr(clean, combined, snr_db)
    # Each component scaled on its own ("first" emb): sum of w_k * scale_k * n_k, / divisor.
    p_clean = _window_power(clean)
    scales = _snr_scale(p_clean, _window_power(components), snr_db, clean.dtype)
    each = clean + jnp.tensordot(weights, scales * components, axes=1) / divisor
    return jnp.where(prescaled, clean + combined, jnp.where(scale_each, each, as_one))


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
