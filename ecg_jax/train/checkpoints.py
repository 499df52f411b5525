"""Orbax checkpoints of the stacked member state, with a fingerprint check.

Each training program (chunk of members) has its own orbax CheckpointManager
under `<workdir>/checkpoints/chunk_NN/`, keyed by the number of finished
epochs. A checkpoint holds two items: `state`, the unpadded stacked
`MemberState` (so it restores on any device count), and `meta`, JSON with the
epoch, the members and a fingerprint of everything that fixes the state's
shapes and meaning (network, its options, members, window, parameter shapes).
Orbax writes each step into a temporary folder and renames it when complete,
so a run killed mid-save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from ecg_jax.errors import CheckpointError
from ecg_jax.train.engine import MemberState


def chunk_dir(workdir: str, chunk: int) -> str:
    return os.path.join(os.path.abspath(workdir), "checkpoints", f"chunk_{chunk:02d}")


def manager(directory: str, keep: int | None = None, read_only: bool = False) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, create=not read_only, read_only=read_only,
        enable_async_checkpointing=False)  # synchronous: the state is small and must be on disk before we go on
    return ocp.CheckpointManager(directory, options=options, item_names=("state", "meta"))


def param_shapes(params: Any) -> dict[str, list[int]]:
    """Parameter shapes per tree path, without the member axis."""
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    return {jax.tree_util.keystr(path): list(np.shape(x)[1:]) for path, x in flat}


def save(mgr: ocp.CheckpointManager, epoch: int, state: MemberState, meta: dict) -> None:
    state = jax.device_get(state)
    mgr.save(epoch, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave({**meta, "epoch": epoch})))
    mgr.wait_until_finished()


def read_meta(mgr: ocp.CheckpointManager, epoch: int | None = None) -> dict | None:
    epoch = mgr.latest_step() if epoch is None else epoch
    if epoch is None:
        return None
    return mgr.restore(epoch, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]


def check_fingerprint(saved: dict, expected: dict, where: str) -> None:
    """Raise CheckpointError naming every field where the checkpoint and config differ."""
    diffs = []
    for key in sorted(set(saved) | set(expected)):
        a, b = saved.get(key), expected.get(key)
        if a != b:
            if key == "param_shapes" and isinstance(a, dict) and isinstance(b, dict):
                changed = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
                detail = "; ".join(f"{k}: checkpoint {a.get(k)} vs config {b.get(k)}" for k in changed[:5])
                diffs.append(f"parameter shapes differ ({len(changed)} arrays: {detail})")
            else:
                diffs.append(f"{key}: checkpoint has {_short(a)}, config has {_short(b)}")
    if diffs:
        raise CheckpointError(f"checkpoint in {where} does not match the config: " + " | ".join(diffs)
                              + ". Use a fresh --workdir, or the config that made this checkpoint.")


def _short(x: Any) -> str:
    s = repr(x)
    return s if len(s) < 120 else s[:117] + "..."


def restore(mgr: ocp.CheckpointManager, template: MemberState, epoch: int | None = None) -> tuple[int, MemberState]:
    """Restore the stacked state into the structure/shapes of `template`."""
    epoch = mgr.latest_step() if epoch is None else epoch
    if epoch is None:
        raise CheckpointError(f"no checkpoint found in {mgr.directory}")
    abstract = jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype), template)
    try:
        restored = mgr.restore(epoch, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"checkpoint at epoch {epoch} in {mgr.directory} does not match the "
                              f"network/config: {str(e).splitlines()[0][:300]}") from None
    return epoch, restored["state"]
