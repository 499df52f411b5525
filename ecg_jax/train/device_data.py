"""The prepared windows as the program's data, plus each member's dataset constants.

Only the clean windows and the noise segment sets the members' recipes use
(three for "paper"/"first": bw, em, ma shared by every SNR) live on the
device; a member's noisy input is mixed on the fly inside the step from its
noise weights, divisor and SNR, by the same function that mixes on the host
(noise.mix_components). So the memory for data does not grow with the number of
(noise type, SNR) datasets trained at once, and no noisy copy is ever built on
the host.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import jax
import numpy as np

from ecg_jax.data import PreparedData
from ecg_jax.data.noise import mix_components
from ecg_jax.data.prepared import WindowSet
from ecg_jax.train.members import Member


class SplitArrays(NamedTuple):
    clean: jax.Array   # (N, L, C) mV
    noise: jax.Array   # (K, N, L, C) the noise segment sets the members' recipes use, paired with `clean`


class Hyper(NamedTuple):
    """One member's optimizer hyperparameters as arrays (a leading member axis in `MemberConsts.hyper`).

    engine.hyper_of makes them and engine.adam_update reads them.
    Values, not constants of the program: one compiled step serves every point of a sweep. Each is the
    float32 that optax's Adam gets from the same Python float, so a member computes the bits of the same
    setting trained alone (`1 - b1` is rounded from the float64 difference, as optax's Python
    arithmetic does, not computed in float32 on the device).
    """
    learning_rate: Any    # ()
    decay_step: Any       # (K,) int32: the first step of each decay
    decay_scale: Any      # (K,) float32: its factor relative to the previous one (float64 ratio)
    weight_decay: Any     # ()
    b1: Any
    one_minus_b1: Any
    b2: Any
    one_minus_b2: Any
    eps: Any


class MemberConsts(NamedTuple):
    """Per-member constants; every leaf has a leading member axis."""
    noise_weights: jax.Array  # (M, K) 1 for the segment sets of the member's recipe, else 0
    noise_divisor: jax.Array  # (M,) the recipe's divisor
    scale_each: jax.Array     # (M,) bool: components scaled on their own ("first" emb)
    prescaled: jax.Array      # (M,) bool: components are scaled noise (the training mixture)
    snr_db: jax.Array         # (M,)
    mean: jax.Array           # (M, C) normalisation statistics of the member's dataset
    std: jax.Array            # (M, C)
    # (M,)-leading Hyper: each member's optimizer hyperparameters (a sweep's points differ);
    # None: every member uses the config's (tests and tools that build consts by hand).
    hyper: Any = None


def segment_keys(prepared: PreparedData, members: Sequence[Member]) -> tuple[str, ...]:
    """The segment sets the members' datasets are mixed from, in first-use order."""
    keys: dict[str, None] = {}
    for m in members:
        keys.update(dict.fromkeys(prepared.recipe(m.dataset.noise_type, m.dataset.snr_db).components))
    return tuple(keys)


def split_arrays(prepared: PreparedData, split: str, keys: Sequence[str]) -> SplitArrays:
    return window_arrays(prepared.train if split == "train" else prepared.test, keys)


def window_arrays(rows: WindowSet, keys: Sequence[str]) -> SplitArrays:
    """The clean windows of `rows` and their noise segment sets `keys`, as host arrays
    (sharding.put_replicated places them); `rows` any WindowSet, e.g. a validation split."""
    clean = np.asarray(rows.clean, np.float32)
    noise = np.stack([np.asarray(rows.noise[k], np.float32) for k in keys])
    return SplitArrays(clean, noise)


def member_consts(prepared: PreparedData, members: Sequence[Member], keys: Sequence[str],
                  hyper: Sequence | None = None) -> MemberConsts:
    """Host (numpy) constants of `members`; sharding.put_members places them. `hyper`: each member's
    engine.Hyper (host arrays), stacked into the consts; None leaves the config's to the step."""
    recipes = [prepared.recipe(m.dataset.noise_type, m.dataset.snr_db) for m in members]
    stats = [prepared.norm_stats(m.dataset.noise_type, m.dataset.snr_db) for m in members]
    return MemberConsts(
        noise_weights=np.asarray([[k in r.components for k in keys] for r in recipes], np.float32),
        noise_divisor=np.asarray([r.divisor for r in recipes], np.float32),
        scale_each=np.asarray([r.scale_each for r in recipes], bool),
        prescaled=np.asarray([r.prescaled for r in recipes], bool),
        snr_db=np.asarray([m.dataset.snr_db for m in members], np.float32),
        mean=np.stack([mean for mean, _ in stats]).astype(np.float32),
        std=np.stack([std for _, std in stats]).astype(np.float32),
        hyper=None if hyper is None else jax.tree_util.tree_map(lambda *v: np.stack(v), *hyper),
    )


def abstract_member_consts(n_members: int, n_segments: int, channels: int = 2,
                           n_decays: int | None = None) -> MemberConsts:
    """Shapes and dtypes of the consts of `n_members`, for lowering a program without data; with
    `n_decays` (the schedule's decay count), the members' hyperparameters too (as training passes them)."""
    def shape(*tail):
        return (n_members,) + tail
    spec = MemberConsts(noise_weights=(shape(n_segments), np.float32), noise_divisor=(shape(), np.float32),
                        scale_each=(shape(), np.bool_), prescaled=(shape(), np.bool_), snr_db=(shape(), np.float32),
                        mean=(shape(channels), np.float32), std=(shape(channels), np.float32))
    consts = MemberConsts(*(jax.ShapeDtypeStruct(s, d) for s, d in spec[:-1]))
    if n_decays is None:
        return consts
    scalar = jax.ShapeDtypeStruct(shape(), np.float32)
    hyper = Hyper(*(scalar,) * len(Hyper._fields))._replace(
        decay_step=jax.ShapeDtypeStruct(shape(n_decays), np.int32),
        decay_scale=jax.ShapeDtypeStruct(shape(n_decays), np.float32))
    return consts._replace(hyper=hyper)


def mix_member_noise(arrays: SplitArrays, idx: jax.Array, consts: MemberConsts):
    """Clean windows `idx` and their noisy versions for one member (unbatched consts)."""
    clean = arrays.clean[idx]
    return clean, mix_components(clean, arrays.noise[:, idx], consts.noise_weights, consts.snr_db,
                                 consts.noise_divisor, consts.scale_each, consts.prescaled)
