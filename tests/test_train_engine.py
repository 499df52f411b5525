"""The member-parallel training program on small random data.

Checks that members are truly independent runs: a vmapped program equals the
same seeds run one by one, `map` equals `vmap`, a NaN in one member leaves
the others untouched, and sharding the member axis over 4 (fake CPU) devices
gives the unsharded numbers.

These are properties of the engine, not of a network, so they use a tiny
convolutional denoiser with BatchNorm (seconds to compile instead of the
tens of seconds of a full U-Net inside a scan); the real networks are trained
end to end in test_train_loop.py.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ecg_jax.models import create_model
from ecg_jax.train import engine
from ecg_jax.train.device_data import MemberConsts, SplitArrays

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WINDOW, N_TRAIN, BATCH, EPOCHS = 32, 64, 16, 2


class TinyDenoiser(nn.Module):
    """Conv -> BatchNorm -> LReLU -> Conv: parameters, batch statistics, a `train` switch."""

    @nn.compact
    def __call__(self, x, *, train: bool):
        h = nn.Conv(8, (5,))(x)
        h = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)(h)
        return nn.Conv(2, (5,))(nn.leaky_relu(h, 0.01))


def small_problem(n_members: int, parallelism: str = "vmap", model_name: str = "tiny"):
    rng = np.random.default_rng(0)
    data = SplitArrays(jnp.asarray(rng.normal(size=(N_TRAIN, WINDOW, 2)), jnp.float32),
                       jnp.asarray(rng.normal(size=(3, N_TRAIN, WINDOW, 2)), jnp.float32))
    consts = MemberConsts(
        noise_weights=jnp.asarray(np.eye(3)[np.arange(n_members) % 3], jnp.float32),
        snr_db=jnp.asarray(np.linspace(-4, 4, n_members), jnp.float32),
        mean=jnp.zeros((n_members, 2)), std=jnp.full((n_members, 2), 1.3))
    s = engine.TrainSettings(batch_size=BATCH, steps_per_epoch=N_TRAIN // BATCH, window=WINDOW, channels=2,
                             learning_rate=1e-3, lr_decay_epoch=1, lr_decay_factor=0.1,
                             member_parallelism=parallelism)
    model = TinyDenoiser() if model_name == "tiny" else create_model(model_name)
    return model, s, consts, data


def take(tree, i):
    return jax.tree_util.tree_map(lambda x: x[i:i + 1], tree)


def relative_distance(a, b, start) -> float:
    """||a - b|| / ||a - start|| over all parameters: how far apart two results are,
    measured against how far training moved them. Adam turns float rounding in
    near-zero gradients into full-size steps of a few single weights, so a max-abs
    bound would be meaningless; over the whole vector rounding stays at 1-5%,
    while two different seeds are ~75x apart."""
    norm = lambda t: float(jnp.sqrt(sum(jnp.sum(x ** 2) for x in jax.tree_util.tree_leaves(t))))
    diff = lambda x, y: jax.tree_util.tree_map(lambda p, q: p - q, x, y)
    return norm(diff(a, b)) / norm(diff(a, start))


def max_abs_diff(a, b) -> float:
    return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree_util.tree_leaves(a),
                                                               jax.tree_util.tree_leaves(b)))


def test_vmapped_seeds_equal_seeds_run_one_by_one():
    model, s, consts, data = small_problem(3)
    train = jax.jit(engine.make_train(model, s, EPOCHS))
    keys = engine.member_keys([0, 1, 2])
    state, losses = train(keys, consts, data)
    init_params = jax.jit(engine.make_init(model, s))(keys).params
    for i in range(3):
        single, single_losses = train(keys[i:i + 1], take(consts, i), data)
        # Same loss curve step by step ...
        np.testing.assert_allclose(losses[:, i], single_losses[:, 0], rtol=2e-4, atol=1e-6)
        # ... and the same parameters, up to float rounding that differs between a
        # grouped (vmapped) and a plain convolution.
        assert relative_distance(take(state.params, i), single.params, take(init_params, i)) < 0.1
    # Distinct seeds are distinct runs, far outside that bound.
    assert relative_distance(take(state.params, 0), take(state.params, 1), take(init_params, 0)) > 10


def test_map_and_vmap_parallelism_agree():
    model, s_v, consts, data = small_problem(2, "vmap")
    _, s_m, _, _ = small_problem(2, "map")
    keys = engine.member_keys([3, 4])
    state_v, loss_v = jax.jit(engine.make_train(model, s_v, EPOCHS))(keys, consts, data)
    state_m, loss_m = jax.jit(engine.make_train(model, s_m, EPOCHS))(keys, consts, data)
    np.testing.assert_allclose(loss_v, loss_m, rtol=2e-4, atol=1e-6)


def test_nan_member_is_frozen_and_does_not_touch_the_others():
    model, s, consts, data = small_problem(3)  # BatchNorm inside: its statistics are checked too
    keys = engine.member_keys([0, 1, 2])
    init = jax.jit(engine.make_init(model, s))
    epoch = jax.jit(engine.make_epoch(model, s))  # scanned epoch: the NaN crosses steps inside one program
    clean_state = init(keys)
    poisoned = clean_state._replace(params=jax.tree_util.tree_map(
        lambda x: x.at[1].set(jnp.nan), clean_state.params))

    ref, ref_losses = epoch(clean_state, consts, data)
    out, out_losses = epoch(poisoned, consts, data)

    assert np.asarray(out.diverged).tolist() == [False, True, False]
    assert np.all(np.isnan(out_losses[1]))
    for i in (0, 2):
        np.testing.assert_array_equal(out_losses[i], ref_losses[i])
        assert max_abs_diff(take(out.params, i), take(ref.params, i)) == 0.0
        assert max_abs_diff(take(out.batch_stats, i), take(ref.batch_stats, i)) == 0.0
    # The frozen member kept its state (no update was applied to it).
    chex.assert_trees_all_equal(take(out.opt_state, 1), take(poisoned.opt_state, 1))


def test_epoch_compiles_once_for_repeated_calls():
    model, s, consts, data = small_problem(2)
    keys = engine.member_keys([0, 1])
    epoch_fn = engine.make_epoch(model, s)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def epoch(state, consts, data):
        return epoch_fn(state, consts, data)

    state = jax.jit(engine.make_init(model, s))(keys)
    for _ in range(3):
        state, _ = epoch(state, consts, data)
    assert int(jax.tree_util.tree_leaves(state.opt_state)[0][0]) >= 0


def test_learning_rate_decays_by_epoch():
    _, s, _, _ = small_problem(1)
    tx_schedule = engine.make_optimizer(s)
    params = {"w": jnp.zeros(())}
    opt = tx_schedule.init(params)
    steps = []
    for _ in range(2 * s.steps_per_epoch):
        upd, opt = tx_schedule.update({"w": jnp.ones(())}, opt, params)
        steps.append(float(-upd["w"]))
    # Adam's first steps with a constant gradient move by ~lr; x0.1 from epoch 1 on.
    np.testing.assert_allclose(steps[0], 1e-3, rtol=1e-3)
    np.testing.assert_allclose(steps[s.steps_per_epoch], 1e-4, rtol=1e-3)


def test_sharded_program_equals_unsharded():
    """Run in a subprocess: the fake device count must be set before JAX starts."""
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {REPO!r}); sys.path.insert(0, {os.path.dirname(__file__)!r})
        import jax, numpy as np
        assert len(jax.devices()) == 4, jax.devices()
        from test_train_engine import small_problem, relative_distance, EPOCHS
        from ecg_jax.train import engine, sharding
        model, s, consts, data = small_problem(3, "vmap")
        keys = engine.member_keys([0, 1, 2])
        init, epoch = engine.make_init(model, s), engine.make_epoch(model, s)
        def run(mesh):
            n = sharding.padded_count(3, mesh)
            k = sharding.place_members(sharding.pad_members(keys, n), mesh)
            c = sharding.place_members(sharding.pad_members(consts, n), mesh)
            d = sharding.place_replicated(data, mesh)
            st = sharding.distribute(init, mesh, 1, 0)(k)
            ep = sharding.distribute(epoch, mesh, 2, 1)
            for _ in range(EPOCHS):
                st, losses = ep(st, c, d)
            return sharding.unpad_members(jax.device_get(st.params), 3), np.asarray(losses)[:3], st
        mesh = sharding.member_mesh()
        p1, l1, _ = run(None)
        p4, l4, st4 = run(mesh)
        leaf = jax.tree_util.tree_leaves(st4.params)[0]
        assert len(leaf.sharding.device_set) == 4, leaf.sharding
        np.testing.assert_allclose(l1, l4, rtol=1e-5, atol=1e-6)
        start = jax.jit(init)(keys).params
        d = relative_distance(p1, p4, start)
        assert d < 0.1, d
        print("SHARDED_OK", d)
    """)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "SHARDED_OK" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-4000:]


@pytest.mark.parametrize("loop,parallelism", [("host", "vmap"), ("host", "map"), ("scan", "map")])
def test_runner_modes_equal_the_pure_scanned_program(loop, parallelism):
    """Host-driven steps (the CPU default) run exactly the program `make_train` describes."""
    from ecg_jax.train.runner import MemberRunner

    model, s, consts, data = small_problem(2, parallelism)
    s = dataclasses.replace(s, loop=loop)
    keys = engine.member_keys([5, 6])
    ref_state, ref_losses = jax.jit(engine.make_train(model, s, EPOCHS))(keys, consts, data)
    runner = MemberRunner(model, s)
    state = runner.init(keys)
    losses = []
    for _ in range(EPOCHS):
        state, epoch_losses = runner.epoch(state, consts, data)
        losses.append(epoch_losses)
    np.testing.assert_allclose(np.stack(losses), ref_losses, rtol=2e-4, atol=1e-6)
    start = jax.jit(engine.make_init(model, s))(keys).params
    assert relative_distance(ref_state.params, state.params, start) < 0.1
