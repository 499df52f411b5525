"""The member-parallel training program on small random data.

Checks that members are truly independent runs: a vmapped program equals the
same seeds run one by one, `map` equals `vmap`, the host loop equals the
scanned epoch, a NaN in one member leaves the others untouched, sharding the
member axis over 4 (fake CPU) devices gives the unsharded numbers, and the
program is traced once per chunk shape.

These are properties of the program, not of a network, so they use a tiny
convolutional denoiser with BatchNorm (seconds to compile instead of the
tens of seconds of a full U-Net); the real networks are trained end to end in
test_train_loop.py and test_multiprocess.py.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
import warnings

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ecg_jax.train import engine, sharding
from ecg_jax.train.device_data import MemberConsts, SplitArrays, abstract_member_consts
from ecg_jax.train.program import RetraceError, TrainProgram

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WINDOW, N_TRAIN, BATCH, EPOCHS = 32, 64, 16, 2
LR = 1e-3
# The convolution whose bias feeds a BatchNorm (see `assert_same_training`).
BIAS_BEFORE_BATCHNORM = "['Conv_0']['bias']"


class TinyDenoiser(nn.Module):
    """Conv -> BatchNorm -> LReLU -> Conv: parameters, batch statistics, a `train` switch.

    The first convolution has a bias followed by BatchNorm, as in the U-Net of
    the reference: the case that needs care when comparing runs.
    """

    @nn.compact
    def __call__(self, x, *, train: bool):
        h = nn.Conv(8, (5,))(x)
        h = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)(h)
        return nn.Conv(2, (5,))(nn.leaky_relu(h, 0.01))


def small_problem(n_members: int, parallelism: str = "vmap"):
    rng = np.random.default_rng(0)
    data = SplitArrays(rng.normal(size=(N_TRAIN, WINDOW, 2)).astype(np.float32),
                       rng.normal(size=(3, N_TRAIN, WINDOW, 2)).astype(np.float32))
    consts = MemberConsts(
        noise_weights=np.eye(3, dtype=np.float32)[np.arange(n_members) % 3],
        noise_divisor=np.ones(n_members, np.float32), scale_each=np.zeros(n_members, bool),
        prescaled=np.zeros(n_members, bool),
        snr_db=np.linspace(-4, 4, n_members).astype(np.float32),
        mean=np.zeros((n_members, 2), np.float32), std=np.full((n_members, 2), 1.3, np.float32))
    s = engine.TrainSettings(batch_size=BATCH, steps_per_epoch=N_TRAIN // BATCH, window=WINDOW, channels=2,
                             learning_rate=LR, lr_decay_epoch=1, lr_decay_factor=0.1,
                             member_parallelism=parallelism)
    return TinyDenoiser(), s, consts, data


def train(seeds, consts, data, s, loop="host", mesh=None, epochs=EPOCHS, model=None):
    """Train `seeds` as one program over `mesh`; host numpy (state, losses (epochs, members, steps))."""
    mesh = mesh or sharding.member_mesh(jax.devices()[:1])
    n = len(seeds)
    n_pad = sharding.padded_count(n, mesh)
    program = TrainProgram(model or TinyDenoiser(), s, mesh, loop)
    state = program.init(sharding.put_members(np.asarray(seeds, np.int32), mesh, n_pad))
    c = sharding.put_members(consts, mesh, n_pad)
    d = sharding.put_replicated(data, mesh)
    losses = []
    for _ in range(epochs):
        state, epoch_losses = program.epoch(state, c, d)
        losses.append(epoch_losses)
    state, losses = sharding.to_host((state, jnp.stack(losses)))
    return jax.tree_util.tree_map(lambda x: x[:n], state), losses[:, :n]


def take(tree, i):
    return jax.tree_util.tree_map(lambda x: x[i], tree)


def flat(tree) -> dict[str, np.ndarray]:
    return {jax.tree_util.keystr(p): np.asarray(x) for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


def leaf_relative_difference(a, b) -> float:
    """max |a - b| / max |a|: the difference relative to the size of the parameter array."""
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(a))), 1e-30))


def assert_same_training(a, b, steps: int, rtol: float = 1e-5) -> None:
    """Every parameter and BatchNorm statistic of two runs of one member agree to `rtol`.

    The one exception is explicit: the bias of a convolution feeding BatchNorm
    has a true gradient of zero (BatchNorm subtracts the batch mean, bias
    included), so its computed gradient is float rounding, and Adam divides it
    by its own root mean square: the "step" is a full learning-rate-sized move
    in a direction set by rounding, and so is the running mean BatchNorm keeps
    of it. Such a bias cannot change the network's training output; we bound it
    by what Adam can move it (lr per step) instead of comparing it.
    """
    pa, pb = flat(a.params), flat(b.params)
    assert pa.keys() == pb.keys()
    for k in pa:
        if k == BIAS_BEFORE_BATCHNORM:
            assert np.max(np.abs(pa[k] - pb[k])) <= 2 * LR * steps * 1.01, k
            continue
        assert leaf_relative_difference(pa[k], pb[k]) <= rtol, (k, leaf_relative_difference(pa[k], pb[k]))
    sa, sb = flat(a.batch_stats), flat(b.batch_stats)
    for k in sa:
        if k.endswith("['mean']"):   # tracks the bias above
            assert np.max(np.abs(sa[k] - sb[k])) <= 2 * LR * steps * 1.01, k
        else:
            assert leaf_relative_difference(sa[k], sb[k]) <= rtol, (k, leaf_relative_difference(sa[k], sb[k]))


def test_vmapped_members_equal_members_one_by_one():
    _, s, consts, data = small_problem(3)
    steps = EPOCHS * s.steps_per_epoch
    state, losses = train([0, 1, 2], consts, data, s)
    for i in range(3):
        single, single_losses = train([i], take_host(consts, i), data, s)
        np.testing.assert_allclose(losses[:, i], single_losses[:, 0], rtol=1e-5, atol=1e-7)
        assert_same_training(take(state, i), take(single, 0), steps)
        np.testing.assert_array_equal(take(state, i).rng, take(single, 0).rng)
    # Distinct seeds are distinct runs, far outside that bound.
    a, b = flat(take(state, 0).params), flat(take(state, 1).params)
    assert leaf_relative_difference(a["['Conv_1']['kernel']"], b["['Conv_1']['kernel']"]) > 0.1


def take_host(consts, i):
    return jax.tree_util.tree_map(lambda x: x[i:i + 1], consts)


def test_map_and_vmap_parallelism_agree():
    _, s_v, consts, data = small_problem(2, "vmap")
    s_m = dataclasses.replace(s_v, member_parallelism="map")
    state_v, loss_v = train([3, 4], consts, data, s_v)
    state_m, loss_m = train([3, 4], consts, data, s_m)
    np.testing.assert_allclose(loss_v, loss_m, rtol=1e-5, atol=1e-7)
    for i in range(2):
        assert_same_training(take(state_v, i), take(state_m, i), EPOCHS * s_v.steps_per_epoch)


def test_host_loop_equals_scanned_epoch():
    """The CPU default (one dispatch per step) runs the same step as the scanned epoch."""
    _, s, consts, data = small_problem(2)
    state_h, loss_h = train([5, 6], consts, data, s, loop="host")
    state_s, loss_s = train([5, 6], consts, data, s, loop="scan")
    np.testing.assert_allclose(loss_h, loss_s, rtol=1e-5, atol=1e-7)
    for i in range(2):
        assert_same_training(take(state_h, i), take(state_s, i), EPOCHS * s.steps_per_epoch)


def test_nan_member_is_frozen_and_does_not_touch_the_others():
    model, s, consts, data = small_problem(3)
    mesh = sharding.member_mesh(jax.devices()[:1])
    c, d = sharding.put_members(consts, mesh), sharding.put_replicated(data, mesh)
    seeds = sharding.put_members(np.arange(3, dtype=np.int32), mesh)
    program = TrainProgram(model, s, mesh, "scan")  # the NaN crosses steps inside one program
    clean_state = program.init(seeds)
    poisoned = clean_state._replace(params=jax.tree_util.tree_map(lambda x: x.at[1].set(jnp.nan),
                                                                  clean_state.params))
    poisoned_host = sharding.to_host(poisoned)
    ref, ref_losses = sharding.to_host(program.epoch(program.init(seeds), c, d))
    out, out_losses = program.epoch(poisoned, c, d)
    out = sharding.to_host(out)
    out_losses = np.asarray(out_losses)

    assert out.diverged.tolist() == [False, True, False]
    assert np.all(np.isnan(out_losses[1]))
    for i in (0, 2):
        np.testing.assert_array_equal(out_losses[i], ref_losses[i])
        for x, y in zip(jax.tree_util.tree_leaves((take(out.params, i), take(out.batch_stats, i))),
                        jax.tree_util.tree_leaves((take(ref.params, i), take(ref.batch_stats, i))), strict=True):
            np.testing.assert_array_equal(x, y)
    # The frozen member kept its state (no update was applied to it).
    for x, y in zip(jax.tree_util.tree_leaves(take(out.opt_state, 1)),
                    jax.tree_util.tree_leaves(take(poisoned_host.opt_state, 1)), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("loop", ["host", "scan"])
def test_program_is_traced_once_per_chunk_shape(loop):
    model, s, consts, data = small_problem(2)
    mesh = sharding.member_mesh(jax.devices()[:1])
    program = TrainProgram(model, s, mesh, loop, max_shapes=1)
    c, d = sharding.put_members(consts, mesh), sharding.put_replicated(data, mesh)
    state = program.init(sharding.put_members(np.arange(2, dtype=np.int32), mesh))
    for _ in range(3):   # the same shapes: no new trace (the guard would raise)
        state, _ = program.epoch(state, c, d)
    half_data = SplitArrays(*(x.astype(np.float16) for x in data))  # a silent dtype change...
    with pytest.raises(RetraceError, match="traced 2 times"):
        program.epoch(state, c, sharding.put_replicated(half_data, mesh))  # ...is caught


@pytest.mark.parametrize("loop", ["host", "scan"])
def test_state_is_donated_to_the_epoch(loop):
    """The step reuses the state's buffers: the caller's copy is gone after an epoch, and XLA
    found a use for every donated buffer (no "donated buffers were not usable" warning)."""
    model, s, consts, data = small_problem(1)
    mesh = sharding.member_mesh(jax.devices()[:1])
    program = TrainProgram(model, s, mesh, loop)
    state = program.init(sharding.put_members(np.zeros(1, np.int32), mesh))
    leaves = jax.tree_util.tree_leaves(state)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        program.epoch(state, sharding.put_members(consts, mesh), sharding.put_replicated(data, mesh))
    assert all(leaf.is_deleted() for leaf in leaves)
    assert not [w for w in caught if "donat" in str(w.message).lower()], [str(w.message) for w in caught]


def test_learning_rate_schedule_decays_by_epoch_and_drives_adam():
    _, s, _, _ = small_problem(1)
    schedule = engine.make_schedule(s)
    assert float(schedule(0)) == pytest.approx(LR)
    assert float(schedule(s.steps_per_epoch - 1)) == pytest.approx(LR)
    assert float(schedule(s.steps_per_epoch)) == pytest.approx(LR * 0.1)
    tx = engine.make_optimizer(s)
    params = {"w": jnp.zeros(())}
    opt = tx.init(params)
    steps = []
    for _ in range(2 * s.steps_per_epoch):
        upd, opt = tx.update({"w": jnp.ones(())}, opt, params)
        steps.append(float(-upd["w"]))
    # Adam's steps with a constant gradient move by ~lr: 1e-3, then x0.1 from epoch 1 on.
    np.testing.assert_allclose(steps[0], 1e-3, rtol=1e-3)
    np.testing.assert_allclose(steps[s.steps_per_epoch], 1e-4, rtol=1e-3)


def test_sharded_program_equals_unsharded():
    """Run in a subprocess: the fake device count must be set before JAX starts."""
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {REPO!r}); sys.path.insert(0, {os.path.dirname(__file__)!r})
        import jax, numpy as np
        assert len(jax.devices()) == 4, jax.devices()
        from test_train_engine import small_problem, train, take, assert_same_training, EPOCHS
        from ecg_jax.train import sharding
        _, s, consts, data = small_problem(3, "vmap")
        one, l1 = train([0, 1, 2], consts, data, s, mesh=sharding.member_mesh(jax.devices()[:1]))
        four, l4 = train([0, 1, 2], consts, data, s, mesh=sharding.member_mesh())   # padded to 4
        np.testing.assert_allclose(l1, l4, rtol=1e-5, atol=1e-7)
        for i in range(3):
            assert_same_training(take(one, i), take(four, i), EPOCHS * s.steps_per_epoch)
        print("SHARDED_OK")
    """)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "SHARDED_OK" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-4000:]


def test_memory_analysis_of_the_compiled_step_grows_with_the_members():
    """What the accelerator chunk plan reads: XLA's per-device bytes of the compiled step."""
    model, s, _, data = small_problem(1)
    mesh = sharding.member_mesh(jax.devices()[:1])
    program = TrainProgram(model, s, mesh, "host", max_shapes=2)
    shapes = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), data)

    def peak(m):
        init = jax.vmap(engine.make_init_one(model, s))
        state = jax.eval_shape(init, jax.ShapeDtypeStruct((m,), jnp.int32))
        consts = abstract_member_consts(m, 3)
        return program.memory_analysis(state, consts, shapes)

    one, four = peak(1), peak(4)
    assert one["peak_bytes"] >= one["argument_size_in_bytes"] >= data[0].nbytes + data[1].nbytes
    assert four["peak_bytes"] > one["peak_bytes"]
    assert one["alias_size_in_bytes"] > 0     # the donated state is reused for the new one
