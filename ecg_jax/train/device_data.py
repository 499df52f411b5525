"""The prepared windows as the program's data, plus each member's dataset constants.

Only the clean windows and the three raw noise segments per window live on the
device; a member's noisy input is mixed on the fly inside the step from its
noise weights and SNR. So the memory for data does not grow with the number of
(noise type, SNR) datasets trained at once, and no noisy copy is ever built on
the host.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ecg_jax.config_utils import RAW_NOISE_TYPES
from ecg_jax.noise import mix_at_snr
from ecg_jax.train.members import Member, noise_weights

if TYPE_CHECKING:  # datasets imports heavy I/O modules; the engine only needs its arrays
    from ecg_jax.datasets import PreparedData


class SplitArrays(NamedTuple):
    clean: jax.Array   # (N, L, C) mV
    noise: jax.Array   # (3, N, L, C) raw bw, em, ma segments paired with `clean`


class MemberConsts(NamedTuple):
    """Per-member constants; every leaf has a leading member axis."""
    noise_weights: jax.Array  # (M, 3)
    snr_db: jax.Array         # (M,)
    mean: jax.Array           # (M, C) normalisation statistics of the member's dataset
    std: jax.Array            # (M, C)


def split_arrays(prepared: "PreparedData", split: str) -> SplitArrays:
    sl = slice(0, prepared.n_train) if split == "train" else slice(prepared.n_train, None)
    clean = np.asarray(prepared.clean[sl], np.float32)
    noise = np.stack([np.asarray(prepared.noise[t][sl], np.float32) for t in RAW_NOISE_TYPES])
    return SplitArrays(clean, noise)  # host arrays; sharding.put_replicated places them


def member_consts(prepared: "PreparedData", members: Sequence[Member]) -> MemberConsts:
    """Host (numpy) constants of `members`; sharding.put_members places them."""
    stats = {}
    for m in members:
        key = (m.dataset.noise_type, m.dataset.snr_db)
        if key not in stats:
            stats[key] = prepared.norm_stats(*key)
    return MemberConsts(
        noise_weights=np.stack([noise_weights(m.dataset.noise_type) for m in members]).astype(np.float32),
        snr_db=np.asarray([m.dataset.snr_db for m in members], np.float32),
        mean=np.stack([stats[(m.dataset.noise_type, m.dataset.snr_db)][0] for m in members]).astype(np.float32),
        std=np.stack([stats[(m.dataset.noise_type, m.dataset.snr_db)][1] for m in members]).astype(np.float32),
    )


def mix_member_noise(arrays: SplitArrays, idx: jax.Array, weights: jax.Array, snr_db: jax.Array):
    """Clean windows `idx` and their noisy versions for one member (unbatched consts)."""
    clean = arrays.clean[idx]
    noise = jnp.tensordot(weights, arrays.noise[:, idx], axes=1)
    return clean, mix_at_snr(clean, noise, snr_db)
