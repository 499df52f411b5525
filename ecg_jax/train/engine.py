"""The training computation of ONE member, and how it is lifted to many.

Everything here is a pure function of arrays written for a single member:
`init_one(seed)`, `shuffle_one(state, data)` and `step_one(state, consts, data,
batch)`. `over_members` lifts such a function to a leading member axis, by
`jax.vmap` (members batched into one wide computation) or `lax.map` (members
one after another inside the program, less memory). `program.py` compiles the
lifted functions once per chunk shape and shards them over the devices.

A member's state carries its parameters, BatchNorm statistics, optimizer state,
PRNG key and a divergence flag. A member whose loss or new parameters are not
finite is frozen: its state is kept as it was before the bad step, its
`diverged` flag is set and its losses read NaN from then on. Members never
interact (no cross-member reduction anywhere), so a diverged member cannot
change the others' numbers.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ecg_jax.data.noise import normalize
from ecg_jax.sweep_points import sweep_points
from ecg_jax.train.device_data import Hyper, MemberConsts, SplitArrays, mix_member_noise
from ecg_jax.train.precision import DEFAULT_INPUT_ROUNDING, DEFAULT_PRECISION

PyTree = Any
MEMBER_PARALLELISM = ("vmap", "map")


class MemberState(NamedTuple):
    params: PyTree
    batch_stats: PyTree      # {} for networks without BatchNorm
    opt_state: PyTree
    rng: jax.Array           # typed PRNG key (jax.random.key), advanced once per epoch
    diverged: jax.Array      # bool scalar


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """The numbers the compiled program depends on (static under jit)."""
    batch_size: int
    steps_per_epoch: int
    window: int
    channels: int
    learning_rate: float
    lr_decay_epoch: int | tuple[int, ...]
    lr_decay_factor: float | tuple[float, ...]
    member_parallelism: str = "vmap"   # how members are batched inside the step: "vmap" or "map"
    precision: str = DEFAULT_PRECISION            # products' precision in the programs (precision.py)
    conv_input_rounding: str = DEFAULT_INPUT_ROUNDING   # CPU emulation of bfloat16/TF32 inputs
    # Adam's coupled (L2, PyTorch `Adam(weight_decay=...)`) weight decay and moments' constants: the
    # config's values (a member's own values, when swept, come in `MemberConsts.hyper`).
    weight_decay: float = 0.0
    adam_b1: float = 0.9
    adam_b2: float = 0.999
    adam_eps: float = 1e-8
    # Whether the step computes the weight-decay term at all (static): a run whose members all have
    # weight_decay 0 compiles the plain Adam step, as before weight decay existed.
    uses_weight_decay: bool = False

    @classmethod
    def from_config(cls, config, n_train: int, member_parallelism: str) -> "TrainSettings":
        t = config.train
        steps = n_train // t.batch_size
        if steps < 1:
            raise ValueError(f"{n_train} training windows is fewer than one batch of {t.batch_size}")
        return cls(batch_size=t.batch_size, steps_per_epoch=steps, window=config.data.window,
                   channels=2, learning_rate=t.learning_rate, lr_decay_epoch=tuple(t.lr_decay_epoch),
                   lr_decay_factor=tuple(t.lr_decay_factor), member_parallelism=member_parallelism,
                   precision=t.get("precision", DEFAULT_PRECISION),
                   conv_input_rounding=t.get("conv_input_rounding", DEFAULT_INPUT_ROUNDING),
                   weight_decay=float(t.get("weight_decay", 0.0)), adam_b1=float(t.get("adam_b1", 0.9)),
                   adam_b2=float(t.get("adam_b2", 0.999)), adam_eps=float(t.get("adam_eps", 1e-8)),
                   uses_weight_decay=uses_weight_decay(config))


def make_schedule(s: TrainSettings) -> optax.Schedule:
    """The reference's per-epoch step decay: lr x `lr_decay_factor[i]` from epoch `lr_decay_epoch[i]` on.

    Factors are relative to the base rate (the final revision's 0.1 at epoch
    50 and 0.05 at 70); optax's boundaries multiply, so each boundary gets the
    ratio to the previous factor. The one source of the learning rate: the
    optimizer uses it, and the training log reads the rate of each epoch from it.
    """
    epochs = np.atleast_1d(np.asarray(s.lr_decay_epoch, np.int64))
    factors = np.atleast_1d(np.asarray(s.lr_decay_factor, np.float64))
    previous = np.concatenate([[1.0], factors[:-1]])
    # strict=False: without decays, `previous` is [1.0] beside no epochs and no factors (no boundary).
    boundaries = {int(e) * s.steps_per_epoch: float(f / p)
                  for e, f, p in zip(epochs, factors, previous, strict=False)}
    return optax.piecewise_constant_schedule(s.learning_rate, boundaries)


def make_optimizer(s: TrainSettings) -> optax.GradientTransformation:
    """optax's Adam with the config's constants: the optimizer whose numbers `adam_update` reproduces bit
    for bit (tests/test_sweeps.py); kept as the reference formulation and for tools outside training."""
    return optax.adam(make_schedule(s), b1=s.adam_b1, b2=s.adam_b2, eps=s.adam_eps)


def uses_weight_decay(config) -> bool:
    """Does any member of `config` decay weights (the config's own value, or a point of its sweep)?"""
    return any(float(point.get("weight_decay", config.train.get("weight_decay", 0.0))) != 0.0
               for point in sweep_points(config))


def hyper_of(values: dict, steps_per_epoch: int) -> Hyper:
    """Host arrays of one member's `Hyper` from its train-section values (the config's, or a sweep point's
    overrides of them): learning_rate, lr_decay_epoch, lr_decay_factor, weight_decay, adam_b1/b2/eps."""
    epochs = np.atleast_1d(np.asarray(values["lr_decay_epoch"], np.int64))
    factors = np.atleast_1d(np.asarray(values["lr_decay_factor"], np.float64))
    previous = np.concatenate([[1.0], factors[:-1]])
    b1, b2 = float(values.get("adam_b1", 0.9)), float(values.get("adam_b2", 0.999))
    def f32(v):
        return np.asarray(v, np.float32)
    return Hyper(learning_rate=f32(values["learning_rate"]),
                 decay_step=(epochs * steps_per_epoch).astype(np.int32), decay_scale=f32(factors / previous),
                 weight_decay=f32(values.get("weight_decay", 0.0)), b1=f32(b1), one_minus_b1=f32(1 - b1),
                 b2=f32(b2), one_minus_b2=f32(1 - b2), eps=f32(values.get("adam_eps", 1e-8)))


def settings_hyper(s: TrainSettings, overrides: dict | None = None) -> Hyper:
    """The config's own `Hyper` (every member of a run without a sweep has it), or with a sweep point's
    `overrides` of its values."""
    return hyper_of({"learning_rate": s.learning_rate, "lr_decay_epoch": s.lr_decay_epoch,
                     "lr_decay_factor": s.lr_decay_factor, "weight_decay": s.weight_decay,
                     "adam_b1": s.adam_b1, "adam_b2": s.adam_b2, "adam_eps": s.adam_eps, **(overrides or {})},
                    s.steps_per_epoch)


def learning_rate_at(h: Hyper, count):
    """optax.piecewise_constant_schedule's arithmetic, with the rate and the factors as values."""
    v = h.learning_rate
    for k in range(h.decay_step.shape[-1]):
        indicator = jnp.maximum(0.0, jnp.sign(h.decay_step[k] - count))
        v = v * indicator + (1 - indicator) * h.decay_scale[k] * v
    return v


def init_optimizer_state(params) -> tuple:
    """The state of `make_optimizer`'s chain (Adam's count and moments, the schedule's count): the
    layout every checkpoint stores."""
    return (optax.scale_by_adam().init(params), optax.scale_by_schedule(lambda count: count).init(params))


def adam_update(grads, opt_state: tuple, params, h: Hyper, with_weight_decay: bool):
    """`(updates, new state)` of one member: optax's Adam step (`make_optimizer`) written out with the
    hyperparameters as values, operation for operation, so the bits are optax's (tests/test_sweeps.py).

    Weight decay is PyTorch Adam's: `g + weight_decay * p` before the moments. A member whose decay is 0
    keeps `g` itself (a select, not `g + 0 * p`), so it matches a run compiled without the term.
    """
    adam, schedule = opt_state
    if with_weight_decay:
        grads = jax.tree_util.tree_map(lambda g, p: jnp.where(h.weight_decay == 0, g, g + h.weight_decay * p),
                                       grads, params)
    mu = jax.tree_util.tree_map(lambda g, t: h.one_minus_b1 * (g ** 1) + h.b1 * t, grads, adam.mu)
    nu = jax.tree_util.tree_map(lambda g, t: h.one_minus_b2 * (g ** 2) + h.b2 * t, grads, adam.nu)
    count_inc = optax.safe_increment(adam.count)
    mu_hat = optax.tree.bias_correction(mu, h.b1, count_inc)
    nu_hat = optax.tree.bias_correction(nu, h.b2, count_inc)
    updates = jax.tree_util.tree_map(lambda m, v: m / (jnp.sqrt(v + 0.0) + h.eps), mu_hat, nu_hat)
    step_size = -1 * learning_rate_at(h, schedule.count)
    updates = jax.tree_util.tree_map(lambda g: jnp.array(step_size, dtype=g.dtype) * g, updates)
    new_state = (adam._replace(count=count_inc, mu=mu, nu=nu),
                 schedule._replace(count=optax.safe_increment(schedule.count)))
    return updates, new_state


def variables_of(params, batch_stats) -> dict:
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
    raise ValueError(f"member_parallelism must be one of {MEMBER_PARALLELISM}, got {parallelism!r}")


def make_init_one(model: nn.Module, s: TrainSettings) -> Callable[[jax.Array], MemberState]:
    """`init_one(seed int32 scalar) -> MemberState` of one member.

    The key is `jax.random.key(seed)`, a typed key with the same bits as the
    raw `PRNGKey(seed)`: the draws, and so the numbers, are the raw key's.
    """
    def init_one(seed):
        init_key, train_key = jax.random.split(jax.random.key(seed))
        dummy = jnp.zeros((1, s.window, s.channels), jnp.float32)
        variables = model.init(init_key, dummy, train=False)
        params = variables["params"]
        batch_stats = variables.get("batch_stats", {})
        return MemberState(params, batch_stats, init_optimizer_state(params), train_key, jnp.zeros((), bool))

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


# Tag that separates the dropout keys from the epoch keys `shuffle_one` splits off the same key.
DROPOUT_STREAM = 0x64726F70


def dropout_key(epoch_key: jax.Array, step) -> jax.Array:
    """The `dropout` rng of one step: a pure function of the member's epoch key and the step index.

    The epoch key is itself a function of the member's seed and the epoch, and
    is checkpointed, so the host loop, the scanned epoch and a resumed run draw
    the same numbers. Networks that draw nothing never read it.
    """
    return jax.random.fold_in(jax.random.fold_in(epoch_key, DROPOUT_STREAM), step)


def make_step_one(model: nn.Module, s: TrainSettings) -> Callable:
    """`step_one(state, consts, data, idx (batch,), step) -> (state, loss)`: one Adam step of one member.

    `step` is the index of the step in the epoch (it seeds stochastic layers).
    A non-finite loss or update freezes the member (see the module docstring). The optimizer's
    hyperparameters are the member's `consts.hyper` (a sweep point), else the config's.
    """
    default_hyper = settings_hyper(s)

    def step_one(state: MemberState, consts: MemberConsts, data: SplitArrays, idx, step):
        clean, noisy = mix_member_noise(data, idx, consts)
        x = normalize(noisy, consts.mean, consts.std)
        y = normalize(clean, consts.mean, consts.std)  # targets use the noisy statistics

        def loss_fn(p):
            out, updates = model.apply(variables_of(p, state.batch_stats), x, train=True,
                                       mutable=["batch_stats"], rngs={"dropout": dropout_key(state.rng, step)})
            return jnp.mean((out - y) ** 2), updates.get("batch_stats", state.batch_stats)

        (loss, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        hyper = consts.hyper if consts.hyper is not None else default_hyper
        updates, new_opt = adam_update(grads, state.opt_state, state.params, hyper, s.uses_weight_decay)
        new_params = optax.apply_updates(state.params, updates)
        ok = jnp.isfinite(loss) & _all_finite(new_params) & _all_finite(new_stats) & ~state.diverged
        def keep(new, old):
            return jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, old)
        new_state = MemberState(keep(new_params, state.params), keep(new_stats, state.batch_stats),
                                keep(new_opt, state.opt_state), state.rng, state.diverged | ~ok)
        return new_state, jnp.where(ok, loss, jnp.nan)

    return step_one


def make_member_step(model: nn.Module, s: TrainSettings) -> Callable:
    """The lifted step: `step(state, consts, order, data, i) -> (state, losses (M,))`.

    Member arguments: the stacked state, consts and this epoch's batch order
    (M, steps, batch); shared: the data and the step index `i`, so the host
    loop and the scanned epoch call literally the same function.
    """
    step_one = make_step_one(model, s)
    return over_members(lambda st, c, order, data, i: step_one(st, c, data, order[i], i),
                        s.member_parallelism, 3)


def make_member_epoch(model: nn.Module, s: TrainSettings) -> Callable:
    """`epoch(state, consts, data) -> (state, losses (M, steps))`: shuffle, then a scan of the lifted step."""
    shuffle = over_members(make_shuffle_one(s), s.member_parallelism, 1)
    step = make_member_step(model, s)

    def epoch(state, consts, data):
        state, order = shuffle(state, data)
        state, losses = jax.lax.scan(lambda st, i: step(st, consts, order, data, i), state,
                                     jnp.arange(s.steps_per_epoch, dtype=jnp.int32))
        return state, losses.T

    return epoch
