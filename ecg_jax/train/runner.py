"""Run the member-parallel program on the hardware at hand.

The same single-member functions (engine.py) are executed in one of three
ways, chosen by `TrainSettings.loop` and `member_parallelism`:

  loop="scan"            one compiled call per epoch: `lax.scan` over steps,
                         members vmapped (or `lax.map`ped). Fewest dispatches;
                         the default on GPU/TPU.
  loop="host", "vmap"    one compiled call per step for all members at once.
  loop="host", "map"     one compiled single-member step, called for each member
                         in turn (on one device), as the reference runs seeds,
                         but without recompiling or reloading anything.

Why "host" exists: XLA:CPU executes convolutions inside loop bodies
(`while`, hence `scan` and `lax.map`) many times slower than the same
convolutions at the top level of a program (jax-ml/jax#12868; measured here:
~2.4 s vs 0.15 s per DANCER step). Driving steps from Python costs one
asynchronous dispatch per step and no data transfer: the state, the data and
the batch indices stay on the device, and the host only reads the losses
once per epoch. See BENCHMARKS.md for the measurements behind the defaults.
"""

from __future__ import annotations


import flax.linen as nn
import jax
import jax.numpy as jnp

from ecg_jax.train import sharding
from ecg_jax.train.device_data import MemberConsts, SplitArrays
from ecg_jax.train.engine import (MemberState, TrainSettings, make_epoch_one, make_init_one,
                                  make_shuffle_one, make_step_one, over_members)


class MemberRunner:
    """Compiled `init(keys)` and `epoch(state, consts, data)` for a block of members.

    `state`, `consts` and `keys` are member-leading and (with a mesh) sharded
    over the devices; `data` is replicated. `epoch` returns the new state and
    the per-step losses, shape (members, steps), still on the device.
    """

    def __init__(self, model: nn.Module, s: TrainSettings, mesh=None):
        self.settings = s
        self.mesh = mesh
        par = s.member_parallelism
        # A Python loop over members only makes sense on one device; with a mesh
        # each device runs its block of members with vmap/lax.map under shard_map.
        self.per_member_dispatch = s.loop == "host" and par == "map" and mesh is None
        self._members, self._stacked = None, None   # per-member states of the last epoch
        init_one = make_init_one(model, s)
        if self.per_member_dispatch:
            self._init_one = jax.jit(init_one)
            self._shuffle_one = jax.jit(make_shuffle_one(s))
            self._step_one = jax.jit(make_step_one(model, s))
        else:
            self._init = sharding.distribute(jax.vmap(init_one), mesh, 1, 0)
        if s.loop == "scan":
            self._epoch = sharding.distribute(over_members(make_epoch_one(model, s), par, 2), mesh, 2, 1)
        elif s.loop == "host":
            if not self.per_member_dispatch:
                self._shuffle = sharding.distribute(over_members(make_shuffle_one(s), par, 1), mesh, 1, 1)
                step_one = make_step_one(model, s)
                step_i = lambda st, c, order, data, i: step_one(st, c, data, order[i])
                self._step = sharding.distribute(over_members(step_i, par, 3), mesh, 3, 2)
        else:
            raise ValueError(f"loop must be 'scan' or 'host', got {s.loop!r}")

    def init(self, keys: jax.Array) -> MemberState:
        if self.per_member_dispatch:
            return _stack([self._init_one(k) for k in keys])
        return self._init(keys)

    def epoch(self, state: MemberState, consts: MemberConsts, data: SplitArrays):
        s = self.settings
        if s.loop == "scan":
            return self._epoch(state, consts, data)
        if not self.per_member_dispatch:
            state, order = self._shuffle(state, data)
            losses = []
            for i in range(s.steps_per_epoch):
                state, loss = self._step(state, consts, order, data, jnp.int32(i))
                losses.append(loss)
            return state, jnp.stack(losses, axis=1)
        n = consts.snr_db.shape[0]
        # The list of per-member states from the previous epoch is reused when we
        # are handed back the very state we returned, so nothing is re-sliced.
        states = self._members if state is self._stacked else _unstack(state, n)
        member_consts = _unstack(consts, n)
        losses = []
        for m in range(n):
            # One member's whole epoch at a time, as in sequential runs: its
            # parameters and optimizer state stay hot in the CPU caches.
            states[m], order = self._shuffle_one(states[m], data)
            member_losses = []
            for i in range(s.steps_per_epoch):
                states[m], loss = self._step_one(states[m], member_consts[m], data, order[i])
                member_losses.append(loss)
            losses.append(jnp.stack(member_losses))
        self._members, self._stacked = states, _stack(states)
        return self._stacked, jnp.stack(losses)


def _stack(trees: list) -> object:
    """Stack per-member trees leaf by leaf (one dispatch per leaf, no giant jit)."""
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)


def _unstack(tree, n: int) -> list:
    return [jax.tree_util.tree_map(lambda x: x[m], tree) for m in range(n)]
