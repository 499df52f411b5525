"""The multi-member training program: init, one epoch, and `make_train`.

Everything here is a pure function of arrays, written for ONE member and
lifted to the member axis by `over_members` (or by `runner.MemberRunner`). A
member's state carries its parameters, BatchNorm statistics, optimizer state,
PRNG key and a divergence flag; the stacked state has a leading member axis.

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
    loop: str = "scan"        # "scan": epoch = lax.scan of steps; "host": one dispatch per step

    @classmethod
    def from_config(cls, config, n_train: int, member_parallelism: str, loop: str) -> "TrainSettings":
        t = config.train
        steps = n_train // t.batch_size
        if steps < 1:
            raise ValueError(f"{n_train} training windows is fewer than one batch of {t.batch_size}")
        return cls(batch_size=t.batch_size, steps_per_epoch=steps, window=config.data.window,
                   channels=2, learning_rate=t.learning_rate, lr_decay_epoch=t.lr_decay_epoch,
                   lr_decay_factor=t.lr_decay_factor, member_parallelism=member_parallelism, loop=loop)


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


def over_members(fn: Callable, parallelism: str, n_member_args: int) -> Callable:
    """Lift a single-member function to the member axis.

    The first `n_member_args` arguments carry a leading member axis; the rest
    (the data, a step index) are shared by all members and are broadcast, not
    sliced. "vmap" batches the members into one wide computation; "map" runs
    them one after another inside the program (`lax.map`).
    """
    if parallelism == "vmap":
        def lifted(*args):
            shared = args[n_member_args:]
            return jax.vmap(lambda *m: fn(*m, *shared))(*args[:n_member_args])
        return lifted
    if parallelism == "map":
        def lifted(*args):
            shared = args[n_member_args:]
            return jax.lax.map(lambda m: fn(*m, *shared), tuple(args[:n_member_args]))
        return lifted
    raise ValueError(f"member_parallelism must be 'vmap' or 'map', got {parallelism!r}")


def make_init_one(model: nn.Module, s: TrainSettings) -> Callable[[jax.Array], MemberState]:
    """`init_one(key (2,) uint32) -> MemberState` of one member."""
    tx = make_optimizer(s)

    def init_one(key):
        init_key, train_key = jax.random.split(key)
        dummy = jnp.zeros((1, s.window, s.channels), jnp.float32)
        variables = model.init(init_key, dummy, train=False)
        params = variables["params"]
        batch_stats = variables.get("batch_stats", {})
        return MemberState(params, batch_stats, tx.init(params), train_key, jnp.zeros((), bool))

    return init_one


def make_shuffle_one(s: TrainSettings) -> Callable:
    """`shuffle_one(state, data) -> (state, order (steps, batch))`: this epoch's batches.

    A fresh permutation per member and epoch from the member's own key; the
    last partial batch is dropped (8000 = 125 x 64 under the protocol, so
    nothing is dropped there).
    """
    n_used = s.steps_per_epoch * s.batch_size

    def shuffle_one(state: MemberState, data: SplitArrays):
        rng, perm_key = jax.random.split(state.rng)
        order = jax.random.permutation(perm_key, data.clean.shape[0])[:n_used]
        return state._replace(rng=rng), order.reshape(s.steps_per_epoch, s.batch_size)

    return shuffle_one


def make_step_one(model: nn.Module, s: TrainSettings) -> Callable:
    """`step_one(state, consts, data, idx (batch,)) -> (state, loss)`: one Adam step of one member.

    A non-finite loss or update freezes the member (see the module docstring).
    """
    tx = make_optimizer(s)

    def step_one(state: MemberState, consts: MemberConsts, data: SplitArrays, idx):
        clean, noisy = mix_member_noise(data, idx, consts.noise_weights, consts.snr_db)
        x = normalize(noisy, consts.mean, consts.std)
        y = normalize(clean, consts.mean, consts.std)  # targets use the noisy statistics

        def loss_fn(p):
            out, updates = model.apply(_variables(p, state.batch_stats), x, train=True,
                                       mutable=["batch_stats"])
            return jnp.mean((out - y) ** 2), updates.get("batch_stats", state.batch_stats)

        (loss, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, new_opt = tx.update(grads, state.opt_state, state.params)
        new_params = optax.apply_updates(state.params, updates)
        ok = jnp.isfinite(loss) & _all_finite(new_params) & _all_finite(new_stats) & ~state.diverged
        keep = lambda new, old: jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, old)
        new_state = MemberState(keep(new_params, state.params), keep(new_stats, state.batch_stats),
                                keep(new_opt, state.opt_state), state.rng, state.diverged | ~ok)
        return new_state, jnp.where(ok, loss, jnp.nan)

    return step_one


def make_epoch_one(model: nn.Module, s: TrainSettings) -> Callable:
    """`epoch_one(state, consts, data) -> (state, losses (steps,))`: shuffle, then a scan of steps."""
    shuffle_one = make_shuffle_one(s)
    step_one = make_step_one(model, s)

    def epoch_one(state: MemberState, consts: MemberConsts, data: SplitArrays):
        state, order = shuffle_one(state, data)
        return jax.lax.scan(lambda st, idx: step_one(st, consts, data, idx), state, order)

    return epoch_one


def make_init(model: nn.Module, s: TrainSettings) -> Callable[[jax.Array], MemberState]:
    """`init(keys (M, 2)) -> stacked MemberState`."""
    return jax.vmap(make_init_one(model, s))


def make_epoch(model: nn.Module, s: TrainSettings) -> Callable:
    """`epoch(state, consts, data) -> (state, losses (M, steps))`: one scanned epoch per member."""
    return over_members(make_epoch_one(model, s), s.member_parallelism, 2)


def make_train(model: nn.Module, s: TrainSettings, epochs: int) -> Callable:
    """The purejaxrl shape: `train(keys, consts, data) -> (final_state, losses (E, M, steps))`.

    Pure and jit-able; the whole run is a `lax.scan` over epochs of a `lax.scan`
    over steps. `runner.MemberRunner` runs the same step function, but stops
    between epochs for checkpoints and progress and, on CPU, drives the steps
    from the host (XLA:CPU runs convolutions inside loops far slower).
    """
    init = make_init(model, s)
    epoch = make_epoch(model, s)

    def train(keys, consts: MemberConsts, data: SplitArrays):
        state = init(keys)
        return jax.lax.scan(lambda st, _: epoch(st, consts, data), state, None, length=epochs)

    return train


def member_keys(seeds) -> jax.Array:
    """Raw uint32 PRNG keys, one per member, from the members' seeds."""
    return jnp.stack([jax.random.PRNGKey(int(seed)) for seed in seeds])
