"""Orbax checkpoints of the member-sharded state, with a fingerprint check.

Each training program (chunk of members) has its own orbax CheckpointManager
under `<workdir>/checkpoints/chunk_NN/`, keyed by the number of finished
epochs. A checkpoint holds two items: `state`, the stacked `MemberState` as
the global, member-sharded arrays the program trains (each process writes the
shards its devices hold; nothing is gathered onto one host), and `meta`, JSON
with the epoch, the member counts and a fingerprint of everything that fixes
the state's shapes and meaning (network, its options, members, window,
parameter shapes).

The saved state includes the padding members (copies of member 0 that make
the member count a multiple of the device count); `padded_members` in the
meta says how many there are, so a checkpoint restores under any device or
process count (`restore` re-pads). Orbax writes each step into a temporary
folder and renames it when complete, so a run killed mid-save leaves the
previous checkpoint intact.
"""

from __future__ import annotations

import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from ecg_jax import interrupts, quiet_logs
from ecg_jax.errors import CheckpointError
from ecg_jax.train import sharding
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


def state_layout(abstract_state: MemberState) -> dict[str, str]:
    """"shape dtype" of every array a checkpoint stores, without the member axis."""
    flat = jax.tree_util.tree_flatten_with_path(jax.eval_shape(_storable, abstract_state))[0]
    return {jax.tree_util.keystr(p): f"{list(x.shape[1:])} {x.dtype}" for p, x in flat}


def _storable(state: MemberState) -> MemberState:
    """Typed PRNG keys as their raw uint32 data (what orbax can store)."""
    return state._replace(rng=jax.random.key_data(state.rng))


def save(mgr: ocp.CheckpointManager, epoch: int, state: MemberState, meta: dict) -> None:
    """Save the global state as it is sharded; every process calls this, each writes its shards.

    Writing the step and pruning the oldest one (orbax does both in `save`) is
    not cut by SIGINT/SIGTERM: the signal is acted on once both are done, so a
    rerun never meets a half-deleted step. A save that fails (a full disk: one
    line naming the folder) removes its own temporary folder; the earlier steps
    stay as they were.
    """
    padded = int(state.diverged.shape[0])
    args = ocp.args.Composite(
        state=ocp.args.StandardSave(_storable(state)),
        meta=ocp.args.JsonSave({**meta, "epoch": epoch, "padded_members": padded,
                                "checksums": state_checksums(state)}))
    with interrupts.deferred(), \
            interrupts.disk_full_as_one_line(str(mgr.directory), f"the checkpoint after epoch {epoch}"):
        try:
            mgr.save(epoch, args=args)
            mgr.wait_until_finished()
        except BaseException:
            quiet_logs.note_abandoned_io()   # the save's other writes fail later, unawaited
            remove_unfinished_step(str(mgr.directory), epoch)
            raise


def remove_unfinished_step(directory: str, epoch: int | None = None) -> None:
    """Delete what a failed or killed save left: orbax's `<epoch>.orbax-checkpoint-tmp*` folders (of
    `epoch`, or of every step). Orbax never reads them; they only take space."""
    import shutil

    prefix = "" if epoch is None else f"{epoch}."
    for name in os.listdir(directory) if os.path.isdir(directory) else []:
        if name.startswith(prefix) and ".orbax-checkpoint-tmp" in name:
            shutil.rmtree(os.path.join(directory, name), ignore_errors=True)


def read_meta(mgr: ocp.CheckpointManager, epoch: int | None = None) -> dict | None:
    epoch = mgr.latest_step() if epoch is None else epoch
    if epoch is None:
        return None
    return _restore_item(mgr, epoch, "meta", ocp.JsonCheckpointHandler(), ocp.args.JsonRestore())


def _restore_item(mgr: ocp.CheckpointManager, epoch: int, item: str, handler, args) -> Any:
    """One item of a step, read by its handler rather than `mgr.restore`.

    orbax's Checkpointer ends every restore with a barrier across processes. A
    process whose read fails (a shard file only it reads is damaged) never
    reaches it, and the processes' next collectives pair up wrongly: each
    then fails or waits forever. Handlers only read; the callers agree on
    success themselves (`sharding.any_process`)."""
    try:
        return handler.restore(mgr.directory / str(epoch) / item, args=args)   # an epath.Path
    except Exception:
        quiet_logs.note_abandoned_io()   # its other reads may still fail later, unawaited
        raise
    finally:
        handler.close()


def read_meta_agreed(mgr: ocp.CheckpointManager, epoch: int) -> dict:
    """`read_meta`, with every process agreeing: DamagedCheckpoint on all when any cannot read it."""
    problem = None
    try:
        meta = read_meta(mgr, epoch)
    except Exception as e:  # noqa: BLE001 - any failure to read it means the step is unusable
        problem = first_line(e)
    if sharding.any_process(problem is not None):
        raise DamagedCheckpoint(f"checkpoint {_step_dir(mgr, epoch)} is damaged: its metadata cannot be read "
                                f"({problem or 'by another process'})")
    return meta


def check_fingerprint(saved: dict, expected: dict, where: str) -> None:
    """Raise CheckpointError naming every field where the checkpoint and config differ."""
    saved = {k: v for k, v in saved.items() if k not in ("epoch", "padded_members", "checksums")}
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


class DamagedCheckpoint(CheckpointError):
    pass


def state_checksums(state: MemberState) -> dict[str, int]:
    """Per-array checksums of a (global) state: the wrapping uint32 sum of its bits.

    Integer addition is associative, so the sum does not depend on how the
    array is sharded or in which order devices add: a checkpoint written by 2
    processes verifies in 1. Computed on the devices; only the sums travel.
    """
    flat = jax.tree_util.tree_flatten_with_path(_storable(state))[0]
    sums = _bits_sums([x for _, x in flat])
    return {jax.tree_util.keystr(p): int(v) for (p, _), v in zip(flat, sharding.to_host(sums), strict=True)}


@jax.jit
def _bits_sums(leaves: list) -> list:
    def bits_sum(x):
        x = x.astype(jnp.uint32) if x.dtype == jnp.bool_ else x
        return jnp.sum(jax.lax.bitcast_convert_type(x, jnp.uint32), dtype=jnp.uint32)
    return [bits_sum(x) for x in leaves]


def restore(mgr: ocp.CheckpointManager, abstract_one: MemberState, n_members: int, mesh,
            epoch: int | None = None, meta: dict | None = None) -> tuple[int, MemberState]:
    """Restore a chunk's state as member-sharded global arrays over `mesh`, verified.

    `abstract_one` gives the shapes of one member's state with a leading
    member axis of any length (e.g. `jax.eval_shape` of init). The result has
    `sharding.padded_count(n_members, mesh)` members, whatever device count
    wrote the checkpoint. A checkpoint that cannot be read, or whose arrays do
    not match the checksums saved with it, raises `DamagedCheckpoint`.
    """
    epoch = mgr.latest_step() if epoch is None else epoch
    if epoch is None:
        raise CheckpointError(f"no checkpoint found in {mgr.directory}")
    meta = read_meta_agreed(mgr, epoch) if meta is None else meta   # the caller's, when it read it already
    saved = int(meta.get("padded_members", n_members))
    # Restore straight into the member sharding when the saved count splits
    # evenly over this mesh; otherwise replicated, then re-padded below.
    target = (sharding.member_sharding(mesh) if saved % sharding.n_devices(mesh) == 0
              else sharding.replicated_sharding(mesh))
    stored = jax.eval_shape(_storable, abstract_one)
    abstract = jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct((saved,) + tuple(x.shape[1:]), x.dtype, sharding=target), stored)
    problem = None
    try:
        restored = _restore_item(mgr, epoch, "state", ocp.StandardCheckpointHandler(),
                                 ocp.args.StandardRestore(abstract))
        state = MemberState(*restored)
        state = state._replace(rng=jax.random.wrap_key_data(state.rng))
    except Exception as e:  # noqa: BLE001 - truncated or missing files surface as many error types
        problem = first_line(e)
    # Each process reads only its own shards: when one of them cannot, all give up this step
    # together (else the others would go on into the checksum collective alone).
    if sharding.any_process(problem is not None):
        raise DamagedCheckpoint(f"checkpoint {_step_dir(mgr, epoch)} is damaged: its arrays cannot be read "
                                f"({problem or 'by another process'})")
    if "checksums" in meta and state_checksums(state) != meta["checksums"]:
        raise DamagedCheckpoint(f"checkpoint {_step_dir(mgr, epoch)} is damaged: its arrays do not match the "
                                "checksums saved with them")
    n_total = sharding.padded_count(n_members, mesh)
    if saved != n_total or target != sharding.member_sharding(mesh):
        state = sharding.conform_members(state, n_members, n_total, mesh)
    return epoch, state


class DamagedInARow(CheckpointError):
    """Two unreadable checkpoints in a row (or a damaged one after one already set aside): stop, move nothing."""


SET_ASIDE_FLAG = "--set_aside_damaged_checkpoints"


def restore_latest_intact(directory: str, abstract_one: MemberState, n_members: int, mesh, fingerprint: dict,
                          move_damaged: bool, warn, set_aside_all: bool = False
                          ) -> tuple[int | None, MemberState | None]:
    """The newest checkpoint of `directory` that reads back intact: (epoch, state), or (None, None).

    One damaged step (the newest) is reported through `warn` in one line and, with `move_damaged`
    (training, process 0), moved to `checkpoints/damaged/` so the run can write that epoch again;
    nothing is deleted. Two unreadable steps in a row are rarely damage: more likely this environment
    cannot read them (another library version, no memory). Then `DamagedInARow` is raised and nothing
    is moved, so every rerun stops the same way until the user passes `set_aside_all` (the train flag
    `SET_ASIDE_FLAG`): every unreadable step is set aside and the run goes on from the newest intact
    one, or from the start. A damaged newest step while `damaged/` already holds a newer one of this
    chunk (set aside by an earlier run, which never got past it) counts as the second in a row.
    A checkpoint of another config raises CheckpointError, as ever: that is not damage.
    """
    mgr = manager(directory, read_only=True)
    steps = sorted(mgr.all_steps(), reverse=True)
    damaged: list[tuple[int, str]] = []   # (epoch, problem), newest first
    found: tuple[int | None, MemberState | None] = (None, None)
    for epoch in steps:
        try:
            meta = read_meta_agreed(mgr, epoch)
            check_fingerprint(meta, fingerprint, directory)
            found = restore(mgr, abstract_one, n_members, mesh, epoch, meta)
            break
        except DamagedCheckpoint as e:
            damaged.append((epoch, str(e)))
        earlier = _set_aside_after(directory, damaged[0][0]) if len(damaged) == 1 else []
        if not set_aside_all and (len(damaged) >= 2 or earlier):
            second = damaged[1][1] if len(damaged) >= 2 else \
                f"checkpoint after epoch {earlier[0]} was set aside before, in {os.path.dirname(directory)}/damaged"
            raise DamagedInARow(f"two checkpoints in a row cannot be read, so nothing is moved or retrained: "
                                f"{damaged[0][1]}; and {second}. If this environment should read them (library "
                                f"versions, memory), fix that and rerun; to set them aside and train again from "
                                f"the newest intact checkpoint (or from the start), " + (
                                    f"rerun with {SET_ASIDE_FLAG}" if move_damaged else
                                    f"run `ecg-jax train --workdir {os.path.dirname(os.path.dirname(directory))} "
                                    f"{SET_ASIDE_FLAG}`"))
    for i, (epoch, problem) in enumerate(damaged):
        if move_damaged:
            target = os.path.join(os.path.dirname(directory), "damaged",
                                  f"{os.path.basename(directory)}_epoch_{epoch}_{int(time.time())}")
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(os.path.join(directory, str(epoch)), target)
            problem += f"; moved to {target}"
        older = damaged[i + 1][0] if i + 1 < len(damaged) else found[0]
        warn(f"WARNING: {problem}; " + (f"using the next older one (after epoch {older})" if older is not None
                                        else "no older checkpoint: starting this chunk from the beginning"))
    return found


def newest_epoch_on_disk(workdir: str, chunk: int | None = None) -> int | None:
    """The newest epoch any chunk of `workdir` (or chunk `chunk`) has a checkpoint of (damaged or not;
    set-aside ones and unfinished saves left out), from the folder names alone: nothing is read."""
    root = os.path.join(os.path.abspath(workdir), "checkpoints")
    names = [f"chunk_{chunk:02d}"] if chunk is not None else \
        [n for n in (os.listdir(root) if os.path.isdir(root) else []) if n.startswith("chunk_")]
    epochs = [int(name) for c in names if os.path.isdir(os.path.join(root, c))
              for name in os.listdir(os.path.join(root, c)) if name.isdigit()]
    return max(epochs, default=None)


def check_epochs_not_behind(workdir: str, epochs: int, flag: str = "--config.train.epochs") -> None:
    """A resume asking for fewer epochs than the checkpoints hold is refused before anything is written.

    It used to record the smaller number in config.json while the checkpoints (and the results it then
    scored) stayed at the larger: config.json must never disagree with the checkpoints."""
    newest = newest_epoch_on_disk(workdir)
    if newest is not None and newest > int(epochs):
        raise CheckpointError(
            f"{workdir} holds checkpoints after epoch {newest}, but the run asks for train.epochs={int(epochs)}; "
            f"a workdir's config.json must agree with its checkpoints, so nothing was changed: resume with "
            f"{flag}={newest} or more, score the earlier checkpoint with `ecg-jax evaluate --workdir {workdir} "
            f"--epoch {int(epochs)}`, or train {int(epochs)} epochs in a fresh --workdir")


def _set_aside_after(directory: str, epoch: int) -> list[int]:
    """Epochs of this chunk's steps set aside in `damaged/` by an earlier run that are newer than `epoch`."""
    folder = os.path.join(os.path.dirname(directory), "damaged")
    prefix = f"{os.path.basename(directory)}_epoch_"
    out = []
    for name in os.listdir(folder) if os.path.isdir(folder) else []:
        if name.startswith(prefix):
            e = name[len(prefix):].split("_")[0]
            if e.isdigit() and int(e) > epoch:
                out.append(int(e))
    return sorted(out, reverse=True)


def _step_dir(mgr: ocp.CheckpointManager, epoch: int) -> str:
    return os.path.join(str(mgr.directory), str(epoch))


def first_line(e: Exception) -> str:
    """The gist of a (often very long) orbax/tensorstore error."""
    text = str(e).strip().splitlines()
    text = text[0] if text else type(e).__name__
    return text if len(text) <= 100 else text[:97] + "..."
