"""Spread the member axis over every local device with `jax.sharding`.

Members are independent, so the natural layout is a one-dimensional mesh
("members") with each device holding a contiguous block of members and the
data replicated. The member count must be a multiple of the device count;
we pad with copies of the first member (their results are discarded, and the
log says how many were added) rather than refusing to run.

Multi-host (TPU pods, multi-node GPU): call `jax.distributed.initialize()`
at the start of every process before anything else touches JAX; `jax.devices()`
then lists the devices of all hosts and the same mesh spans them. Every process
must run the same script with the same config; each host writes only its own
shards of the orbax checkpoint.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

MEMBER_AXIS = "members"


def member_mesh(devices=None) -> Mesh | None:
    """A 1-D mesh over `devices` (default: all), or None for a single device."""
    devices = list(jax.devices() if devices is None else devices)
    if len(devices) <= 1:
        return None
    return Mesh(np.asarray(devices), (MEMBER_AXIS,))


def n_devices(mesh: Mesh | None) -> int:
    return 1 if mesh is None else mesh.devices.size


def padded_count(n_members: int, mesh: Mesh | None) -> int:
    d = n_devices(mesh)
    return -(-n_members // d) * d


def pad_members(tree: Any, n_total: int) -> Any:
    """Append copies of member 0 along the leading axis up to `n_total`."""
    def pad(x):
        n = x.shape[0]
        if n == n_total:
            return x
        extra = jnp.broadcast_to(x[:1], (n_total - n,) + x.shape[1:])
        return jnp.concatenate([x, extra], axis=0)
    return jax.tree_util.tree_map(pad, tree)


def unpad_members(tree: Any, n_members: int) -> Any:
    return jax.tree_util.tree_map(lambda x: x[:n_members], tree)


def place_members(tree: Any, mesh: Mesh | None) -> Any:
    """Put member-leading arrays on the devices, split along the member axis."""
    if mesh is None:
        return jax.device_put(tree)
    return jax.device_put(tree, NamedSharding(mesh, P(MEMBER_AXIS)))


def place_replicated(tree: Any, mesh: Mesh | None) -> Any:
    """Put shared arrays (the data) on every device."""
    if mesh is None:
        return jax.device_put(tree)
    return jax.device_put(tree, NamedSharding(mesh, P()))


def distribute(fn: Callable, mesh: Mesh | None, n_member_args: int, n_shared_args: int) -> Callable:
    """jit `fn(*member_args, *shared_args)` with its member axis split over `mesh`.

    On one device this is plain `jax.jit`. On several, `shard_map` runs `fn` on
    each device's block of members (its vmap/map then only sees local members),
    with the shared arguments replicated; every output is member-leading.
    """
    if mesh is None:
        return jax.jit(fn)
    in_specs = (P(MEMBER_AXIS),) * n_member_args + (P(),) * n_shared_args
    return jax.jit(jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=P(MEMBER_AXIS)))
