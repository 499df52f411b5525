"""Members: the independent training runs that share one compiled program.

A member is one (seed, dataset) pair, where a dataset is one (noise type,
input SNR), and, in a hyperparameter sweep, one point of the sweep
(ecg_jax/sweep_points.py). The original code base trains each member as its
own sequential run; here they are a leading array axis. Members are ordered
dataset-major, then by sweep point (every seed of the first point of the first
dataset, then every seed of its next point, ...).

A member's PRNG key depends on its seed alone, as in the reference (which
seeds each run with `torch.manual_seed(seed)` whatever the dataset): seed 3
on emb/0 dB starts from the same initial weights and shuffling stream whether
it is trained alone or inside the full grid.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import ml_collections

from ecg_jax.config_utils import dataset_grid
from ecg_jax.sweep_points import point_name, point_to_json, sweep_points


@dataclasses.dataclass(frozen=True)
class Dataset:
    noise_type: str
    snr_db: float


@dataclasses.dataclass(frozen=True)
class Member:
    index: int      # position in the full member list of the experiment
    seed: int
    dataset: Dataset
    # The sweep point's train overrides as sorted (name, value) pairs; () = the config's own values.
    point: tuple = ()

    @property
    def overrides(self) -> dict:
        return dict(self.point)

    @property
    def point_name(self) -> str:
        return point_name(self.overrides)

    def to_json(self) -> dict:
        out = {"index": self.index, "seed": self.seed,
               "noise_type": self.dataset.noise_type, "snr_db": self.dataset.snr_db}
        if self.point:   # absent without a sweep: fingerprints of earlier workdirs stay valid
            out["sweep"] = point_to_json(self.overrides)
        return out


def datasets_of(config: ml_collections.ConfigDict) -> list[Dataset]:
    """The (noise type, SNR) grid of a resolved config, noise-type-major.

    The training mixture ("mixed") is one dataset; its snr_db is the mean of the
    levels its windows are drawn from (0 dB for -4..4), the nominal value a
    results row needs.
    """
    return [Dataset(n, s) for n, s in dataset_grid(config)]


def members_of(config: ml_collections.ConfigDict) -> list[Member]:
    seeds = [config.seed_offset + i for i in range(config.seeds)]
    points = [tuple(sorted(p.items())) for p in sweep_points(config)] if "train" in config else [()]
    out = []
    for d in datasets_of(config):
        for p in points:
            for s in seeds:
                out.append(Member(len(out), s, d, p))
    return out


def chunk_members(members: Sequence[Member], max_per_program: int) -> list[list[Member]]:
    """Split the member list into programs of at most `max_per_program`."""
    if max_per_program <= 0 or max_per_program >= len(members):
        return [list(members)]
    return [list(members[i:i + max_per_program]) for i in range(0, len(members), max_per_program)]
