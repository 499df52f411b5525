"""The multi-member training program: init, one epoch, and `make_train`.

Everything here is a pure function of arrays. A member's state carries its
parameters, BatchNorm statistics, optimizer state, PRNG key and a divergence
flag; the stacked state has a leading member axis. One epoch is a `lax.scan`
over the optimisation steps; the member axis is either `jax.vmap`ped (one
wide program, best on accelerators) or `lax.map`ped (members one after
another inside the same compiled program, often best on CPU), chosen by
`member_parallelism`.

A member whose loss or new parameters are not finite is frozen: its state is
kept as it was before the bad step, its `diverged` flag is set and its losses
read NaN from then on. Members never interact (no cross-member reduction
anywhere), so a diverged member cannot change the others' numbers.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from ecg_jax.noise import normalize
from ecg_jax.train.device_data import MemberConsts, SplitArrays, mix_member_noise

PyTree = Any


class MemberState(NamedTuple):
    params: PyTree
    batch_stats: PyTree      # {} for networks without BatchNorm
    opt_state: PyTree
    rng: jax.Array           # raw uint32 PRNG key, advanced once per epoch
    diverged: jax.Array      # bool scalar


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """The numbers the compiled program depends on (static under jit)."""
    batch_size: int
    steps_per_epoch: int
    window: int
    channels: int
    learning_rate: float
    lr_decay_epoch: int
    lr_decay_factor: float
    member_parallelism: str   # "vmap" or "map" (already resolved from "auto")

    @classmethod
    def from_config(cls, config, n_train: int, member_parallelism: str) -> "TrainSettings":
        t = config.train
        steps = n_train // t.batch_size
        if steps < 1:
            raise ValueError(f"{n_train} training windows is fewer than one batch of {t.batch_size}")
        return cls(batch_size=t.batch_size, steps_per_epoch=steps, window=config.data.window,
                   channels=2, learning_rate=t.learning_rate, lr_decay_epoch=t.lr_decay_epoch,
                   lr_decay_factor=t.lr_decay_factor, member_parallelism=member_parallelism)


def make_optimizer(s: TrainSettings) -> optax.GradientTransformation:
    """Adam with the reference's per-epoch step decay (x factor from `lr_decay_epoch` on)."""
    boundary = s.lr_decay_epoch * s.steps_per_epoch
    schedule = optax.piecewise_constant_schedule(s.learning_rate, {boundary: s.lr_decay_factor})
    return optax.adam(schedule, b1=0.9, b2=0.999, eps=1e-8)


def _variables(params, batch_stats):
    return {"params": params, "batch_stats": batch_stats} if batch_stats else {"params": params}


def _all_finite(tree) -> jax.Array:
    leaves = jax.tree_util.tree_leaves(tree)
    if not leaves:  # e.g. the batch_stats of a network without BatchNorm
        return jnp.asarray(True)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def _over_members(fn: Callable, parallelism: str) -> Callable:
    """Lift a single-member function to the member axis (all args batched)."""
    if parallelism == "vmap":
        return jax.vmap(fn)
    if parallelism == "map":
        return lambda *args: jax.lax.map(lambda a: fn(*a), args)
    raise ValueError(f"member_parallelism must be 'vmap' or 'map', got {parallelism!r}")


def make_init(model: nn.Module, s: TrainSettings) -> Callable[[jax.Array], MemberState]:
    """`init(keys (M, 2) uint32) -> stacked MemberState`."""
    tx = make_optimizer(s)

    def init_one(key):
        init_key, train_key = jax.random.split(key)
        dummy = jnp.zeros((1, s.window, s.channels), jnp.float32)
        variables = model.init(init_key, dummy, train=False)
        params = variables["params"]
        batch_stats = variables.get("batch_stats", {})
        return MemberState(params, batch_stats, tx.init(params), train_key, jnp.zeros((), bool))

    return jax.vmap(init_one)


def make_epoch(model: nn.Module, s: TrainSettings) -> Callable:
    """`epoch(state, consts, train_arrays) -> (state, losses (M, steps))`, one pass per member."""
    tx = make_optimizer(s)
    n_used = s.steps_per_epoch * s.batch_size

    def epoch_one(state: MemberState, consts: MemberConsts, data: SplitArrays):
        rng, perm_key = jax.random.split(state.rng)
        n_train = data.clean.shape[0]
        # A fresh shuffle per member and epoch; the last partial batch is dropped
        # (8000 = 125 x 64 under the protocol, so nothing is dropped there).
        order = jax.random.permutation(perm_key, n_train)[:n_used].reshape(s.steps_per_epoch, s.batch_size)

        def step(carry, idx):
            params, batch_stats, opt_state, diverged = carry
            clean, noisy = mix_member_noise(data, idx, consts.noise_weights, consts.snr_db)
            x = normalize(noisy, consts.mean, consts.std)
            y = normalize(clean, consts.mean, consts.std)  # targets use the noisy statistics

            def loss_fn(p):
                out, updates = model.apply(_variables(p, batch_stats), x, train=True,
                                           mutable=["batch_stats"])
                return jnp.mean((out - y) ** 2), updates.get("batch_stats", batch_stats)

            (loss, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
            updates, new_opt = tx.update(grads, opt_state, params)
            new_params = optax.apply_updates(params, updates)
            ok = jnp.isfinite(loss) & _all_finite(new_params) & _all_finite(new_stats) & ~diverged
            keep = lambda new, old: jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, old)
            carry = (keep(new_params, params), keep(new_stats, batch_stats),
                     keep(new_opt, opt_state), diverged | ~ok)
            return carry, jnp.where(ok, loss, jnp.nan)

        init = (state.params, state.batch_stats, state.opt_state, state.diverged)
        (params, batch_stats, opt_state, diverged), losses = jax.lax.scan(step, init, order)
        return MemberState(params, batch_stats, opt_state, rng, diverged), losses

    def epoch(state: MemberState, consts: MemberConsts, data: SplitArrays):
        # The data is shared by every member: it enters the lifted function by
        # closure, so vmap/map broadcast it instead of slicing it.
        return _over_members(lambda st, c: epoch_one(st, c, data), s.member_parallelism)(state, consts)

    return epoch


def make_train(model: nn.Module, s: TrainSettings, epochs: int) -> Callable:
    """The purejaxrl shape: `train(keys, consts, data) -> (final_state, losses (E, M, steps))`.

    Pure and jit-able; the whole run is a `lax.scan` over epochs. The driver in
    `loop.py` uses the same `make_init`/`make_epoch` pieces but stops between
    epochs for checkpoints and progress.
    """
    init = make_init(model, s)
    epoch = make_epoch(model, s)

    def train(keys, consts: MemberConsts, data: SplitArrays):
        state = init(keys)

        def body(st, _):
            return epoch(st, consts, data)

        return jax.lax.scan(body, state, None, length=epochs)

    return train


def member_keys(seeds) -> jax.Array:
    """Raw uint32 PRNG keys, one per member, from the members' seeds."""
    return jnp.stack([jax.random.PRNGKey(int(seed)) for seed in seeds])
