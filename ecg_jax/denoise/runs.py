"""Members of a training workdir, restored for inference and stacked along a member axis."""

from __future__ import annotations

import dataclasses
import json
import os

import flax.linen as nn
import numpy as np

from ecg_jax.errors import CheckpointError
from ecg_jax.denoise.weights import stack_variables


@dataclasses.dataclass
class RestoredMembers:
    model: nn.Module
    variables: dict            # stacked: leading member axis K
    mean: np.ndarray           # (K, 2) mV
    std: np.ndarray            # (K, 2) mV
    members: list[dict]        # index, seed, noise_type, snr_db, epoch of each
    config: object             # the run's resolved ml_collections config


def member_indices(config, member: str | int) -> list[int]:
    """"all" -> every member of the run; an int (or its string) -> that one, checked."""
    from ecg_jax.train.members import members_of

    count = len(members_of(config))
    if str(member).strip().lower() == "all":
        return list(range(count))
    try:
        index = int(member)
    except ValueError:
        raise CheckpointError(f"--member must be a member index or 'all', got {member!r}") from None
    if not 0 <= index < count:
        raise CheckpointError(f"member {index} does not exist: the run has members 0..{count - 1}")
    return [index]


def restore_members(workdir: str, member: str | int = "all", epoch: int | None = None) -> RestoredMembers:
    from ecg_jax.evaluation import load_workdir_config, restore_member

    config = load_workdir_config(workdir)
    restored = [restore_member(workdir, i, epoch) for i in member_indices(config, member)]
    return RestoredMembers(
        model=restored[0]["model"],
        variables=stack_variables([r["variables"] for r in restored]),
        mean=np.stack([r["mean"] for r in restored]).astype(np.float32),
        std=np.stack([r["std"] for r in restored]).astype(np.float32),
        members=[{**r["member"].to_json(), "epoch": int(r["epoch"])} for r in restored],
        config=config)


def read_data_card(workdir: str) -> dict:
    path = os.path.join(workdir, "data_card.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)
