"""The member axis over every device of every process, with `jax.sharding`.

Members are independent, so the layout is a one-dimensional mesh ("members")
over all devices (`jax.devices()`: with `jax.distributed` these are the devices
of every process), each device holding a contiguous block of members and the
data replicated. One device is a mesh of one: there is no separate
single-device path.

The member count of a program is padded to a multiple of the device count
with copies of the first member (their results are discarded, and the log says
how many were added).

Every process computes the same host arrays (the data preparation is
deterministic), and global arrays are assembled from them with
`jax.make_array_from_callback`: each process supplies only the shards its own
devices hold. Numbers the host needs (losses, divergence flags, metrics) come
back through `process_allgather`, so every process sees all members.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

MEMBER_AXIS = "members"


def member_mesh(devices=None) -> Mesh:
    """A 1-D mesh over `devices` (default: all devices of all processes)."""
    devices = list(jax.devices() if devices is None else devices)
    return Mesh(np.asarray(devices), (MEMBER_AXIS,))


def n_devices(mesh: Mesh) -> int:
    return int(mesh.devices.size)


def padded_count(n_members: int, mesh: Mesh) -> int:
    d = n_devices(mesh)
    return -(-n_members // d) * d


def member_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P(MEMBER_AXIS))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def pad_host(tree: Any, n_total: int) -> Any:
    """Numpy copy of a member-leading tree with copies of member 0 appended up to `n_total`."""
    def pad(x):
        x = np.asarray(x)
        if x.shape[0] == n_total:
            return x
        return np.concatenate([x, np.repeat(x[:1], n_total - x.shape[0], axis=0)], axis=0)
    return jax.tree_util.tree_map(pad, tree)


def _global(x: np.ndarray, sharding: NamedSharding) -> jax.Array:
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def put_members(tree: Any, mesh: Mesh, n_total: int | None = None) -> Any:
    """Host member-leading arrays (the same on every process) -> member-sharded global arrays."""
    if n_total is not None:
        tree = pad_host(tree, n_total)
    return jax.tree_util.tree_map(lambda x: _global(x, member_sharding(mesh)), tree)


def put_replicated(tree: Any, mesh: Mesh) -> Any:
    """Host arrays shared by all members (the data) -> replicated global arrays."""
    return jax.tree_util.tree_map(lambda x: _global(x, replicated_sharding(mesh)), tree)


def over_devices(fn: Callable, mesh: Mesh, n_member_args: int, n_shared_args: int) -> Callable:
    """`fn(*member_args, *shared_args)` run on each device's block of members (`shard_map`).

    Each device sees only its own members, so whatever `fn` does per member
    (vmap or lax.map) is local; the shared arguments are replicated and every
    output is member-leading. No collective is needed: members never interact.
    """
    in_specs = (P(MEMBER_AXIS),) * n_member_args + (P(),) * n_shared_args
    return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=P(MEMBER_AXIS))


def to_host(tree: Any) -> Any:
    """Global arrays -> numpy arrays holding every member, on every process.

    Typed PRNG keys come back as their raw uint32 key data.
    """
    tree = jax.tree_util.tree_map(
        lambda x: jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x, tree)
    if jax.process_count() == 1:
        return jax.tree_util.tree_map(np.asarray, jax.device_get(tree))
    return jax.tree_util.tree_map(lambda x: np.asarray(multihost_utils.process_allgather(x, tiled=True)), tree)


def conform_members(tree: Any, n_members: int, n_total: int, mesh: Mesh) -> Any:
    """Re-pad a member-leading global tree to `n_total` members, sharded over `mesh`.

    Used when a checkpoint written with one device count is restored under
    another: the saved copies of member 0 are dropped and new ones appended.
    """
    def conform(x):
        x = x[:n_members]
        if n_total > n_members:
            x = jax.numpy.concatenate([x, jax.numpy.repeat(x[:1], n_total - n_members, axis=0)], axis=0)
        return x
    return jax.jit(lambda t: jax.tree_util.tree_map(conform, t), out_shardings=member_sharding(mesh))(tree)


def any_process(flag: bool) -> bool:
    """True on every process when `flag` is true on any: one decision where processes saw different
    things (a file only one of them reads). A collective: every process must call it."""
    if jax.process_count() == 1:
        return bool(flag)
    return bool(np.any(multihost_utils.process_allgather(np.asarray(flag, dtype=np.int32))))


def is_main_process() -> bool:
    return jax.process_index() == 0


def log(msg: str) -> None:
    """A progress or warning line on stderr, printed once per run (by process 0)."""
    if is_main_process():
        print(msg, file=sys.stderr, flush=True)
