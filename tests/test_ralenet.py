"""RALENet (models.md, "Final revision networks"): the Flax network against its PyTorch twin.

The twin (benchmarks/torch_ralenet.py) is written from the reference's code;
`tests/twin_parity.py` compares train- and eval-mode outputs, BatchNorm
running statistics and MSE-loss gradients on copied weights. Then the new
pieces by hand (relative position bias, patch merging/separation, partial
convolution, stochastic depth), the length rule, and the training engine's
dropout stream with RALENet.

torch is an optional benchmark extra: without it this module is skipped with a reason.
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent

if importlib.util.find_spec("torch") is None:
    pytest.skip("torch not installed: pip install -r benchmarks/requirements.txt",
                allow_module_level=True)

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
sys.path.insert(0, str(REPO_ROOT / "tests"))
import torch_ralenet  # noqa: E402
from twin_parity import check_parity, state_of  # noqa: E402

from ecg_jax.errors import ConfigError  # noqa: E402
from ecg_jax.models import count_params, create_model, reference_param_count  # noqa: E402
from ecg_jax.models.ralenet import (  # noqa: E402
    DropPath,
    Mlp,
    PatchMerging,
    PatchSeparate,
    TransformerBlock,
    drop_path,
    relative_bias,
    sinusoid_table,
)
from ecg_jax.train import engine  # noqa: E402
from ecg_jax.train.device_data import MemberConsts, SplitArrays  # noqa: E402

FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def make_twin(**kwargs):
    """The twin with its (zero-initialised) relative position tables drawn at random, so the bias matters."""
    net = torch_ralenet.TorchRALENet(**kwargs)
    with torch.no_grad():
        for rw in net.rwattns:
            rw.relative_position_bias_table.normal_(0.0, 0.5)
    return net


# ---------------------------------------------------------------- parity with the twin

def test_parameter_counts_of_twin_and_flax_equal_models_md():
    shapes = jax.eval_shape(lambda: create_model("ralenet").init(jax.random.key(0), jnp.zeros((1, 256, 2)),
                                                                 train=False))
    assert count_params(shapes["params"]) == 1_088_690 == reference_param_count("ralenet")
    assert torch_ralenet.count_params(torch_ralenet.TorchRALENet()) == 1_088_690
    assert torch_ralenet.REFERENCE_PARAM_COUNT == 1_088_690


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_flax_network_equals_the_twin(dtype):
    # Length 64 with batch 2 keeps this fast; the bias span (32) is still exceeded at level 0,
    # so both the biased and the unbiased attention pairs are compared.
    check_parity(make_twin, create_model("ralenet"), torch_ralenet.to_flax, dtype=dtype, batch=2, length=64)


def test_flax_network_equals_the_twin_with_the_references_float32_position_table():
    """The reference computes the sinusoids in float32; with that table the twin agrees to float32 tolerance."""
    check_parity(lambda: make_twin(pe_recipe="reference"), create_model("ralenet"), torch_ralenet.to_flax,
                 dtype="float32", batch=2, length=64)


def test_sinusoid_table_is_the_references_to_float32_rounding():
    for dim in (8, 32, 128):
        ours = sinusoid_table(256, dim)
        theirs = torch_ralenet.position_table(256, dim, "reference")[0].double().numpy()
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=2e-5)
        # Hand values: position 0 is (0, 1, 0, 1, ...); channel pair 0 has frequency 1.
        np.testing.assert_array_equal(ours[0], np.tile([0.0, 1.0], dim // 2))
        np.testing.assert_allclose(ours[5, :2], [np.sin(5.0), np.cos(5.0)], rtol=1e-15)


def test_flax_runs_a_full_256_window_as_the_twin_does():
    """The protocol's window length, eval mode, float32: the same outputs on copied weights."""
    torch.manual_seed(3)
    net = make_twin().eval()
    x = torch.randn(2, 2, 256, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        want = net(x).numpy().transpose(0, 2, 1)
    variables = jax.tree_util.tree_map(jnp.asarray, torch_ralenet.to_flax(state_of(net)))
    got = jax.jit(lambda v, x: create_model("ralenet").apply(v, x, train=False))(
        variables, jnp.asarray(x.numpy().transpose(0, 2, 1)))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-5)


# ---------------------------------------------------------------- the new pieces by hand

def test_relative_bias_covers_the_first_32_positions_only():
    table = jnp.asarray(np.arange(1, 63 * 2 + 1, dtype=np.float32).reshape(63, 2))   # no zero entry
    bias = np.asarray(relative_bias(table, 64))
    assert bias.shape == (2, 64, 64)
    for h in range(2):
        for i in (0, 5, 31):
            for j in (0, 7, 31):
                assert bias[h, i, j] == table[i - j + 31, h]
    assert bias[0, 0, 31] == 1.0          # offset 0 - 31 + 31 = 0: the table's first row, head 0
    assert bias[1, 31, 0] == 62 * 2 + 2   # offset 62: the last row, head 1
    assert not bias[:, 32:, :].any() and not bias[:, :, 32:].any()
    # Shorter sequences (the deepest levels) take the top-left corner of the same block.
    np.testing.assert_array_equal(relative_bias(table, 16), bias[:, :16, :16])


def test_patch_merging_and_separation_layouts_by_hand():
    x = jnp.asarray(np.arange(2 * 4 * 2, dtype=np.float32).reshape(2, 4, 2))   # (B, L=4, C=2)
    def identity(c):
        return {"params": {"norm": {"scale": jnp.ones(c), "bias": jnp.zeros(c)},
                           "reduction": {"kernel": jnp.eye(c)}}}

    def layer_norm(a):
        a = np.asarray(a, np.float64)
        c = a - a.mean(-1, keepdims=True)
        return c / np.sqrt((c ** 2).mean(-1, keepdims=True) + 1e-5)

    merged = PatchMerging().apply(identity(4), x)
    # Position m gets [x[2m], x[2m+1]] on channels: batch 0, m = 1 is [4, 5, 6, 7].
    np.testing.assert_allclose(merged, layer_norm(np.asarray(x).reshape(2, 2, 4)), rtol=1e-6)
    np.testing.assert_allclose(merged[0, 1], layer_norm(np.array([4.0, 5.0, 6.0, 7.0])), rtol=1e-6)

    y = jnp.asarray(np.arange(1 * 2 * 4, dtype=np.float32).reshape(1, 2, 4))  # (B, L=2, C=4)
    separated = PatchSeparate().apply(identity(2), y)
    # Channels [0, 1] at positions 0, 1 and channels [2, 3] at positions 2, 3 (not interleaved).
    expected = np.array([[[0.0, 1.0], [4.0, 5.0], [2.0, 3.0], [6.0, 7.0]]])
    np.testing.assert_allclose(separated, layer_norm(expected), rtol=1e-6)


def test_mlp_partial_convolution_touches_the_first_hidden_channel_only():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 8, 2)), jnp.float32)
    mlp = Mlp()
    variables = jax.tree_util.tree_map(jnp.asarray, mlp.init(jax.random.key(0), x))
    p = variables["params"]
    def gelu(a):
        return jax.nn.gelu(a, approximate=False)
    h = gelu(x @ p["fc1"]["kernel"] + p["fc1"]["bias"])
    w = p["partial_conv"]["kernel"][:, 0, 0]                    # taps for t-1, t, t+1
    h0 = np.pad(np.asarray(h[0, :, 0]), 1)
    conv = w[0] * h0[:-2] + w[1] * h0[1:-1] + w[2] * h0[2:]
    hidden = np.asarray(h).copy()
    hidden[0, :, 0] = conv
    expected = gelu(jnp.asarray(hidden)) @ p["fc2"]["kernel"] + p["fc2"]["bias"]
    np.testing.assert_allclose(mlp.apply(variables, x), expected, rtol=1e-5, atol=1e-6)
    assert count_params(p["partial_conv"]) == 3


# ---------------------------------------------------------------- stochastic depth

def test_drop_path_keeps_or_drops_whole_samples_and_scales_survivors():
    rate, batch = 0.25, 64
    x = jnp.asarray(np.random.default_rng(1).normal(size=(batch, 5, 3)), jnp.float32)
    key = jax.random.key(42)
    y = np.asarray(drop_path(x, rate, key))
    # By hand: sample b is kept when uniform(key)[b] < keep_prob, and then multiplied by 1 / keep_prob
    # (the reference's order: the mask is divided, then multiplies the branch).
    keep = 1.0 - rate
    kept = np.asarray(jax.random.uniform(key, (batch, 1, 1)) < keep)[:, 0, 0]
    assert 0 < kept.sum() < batch
    np.testing.assert_array_equal(y[~kept], 0.0)
    np.testing.assert_array_equal(y[kept], np.asarray(x)[kept] * np.float32(1.0 / keep))
    # Unbiased: over many samples the mean of the kept-and-scaled ones is the input's.
    big = np.asarray(drop_path(jnp.ones((20_000, 1, 1)), rate, key))
    assert set(np.unique(big)) == {0.0, np.float32(1 / keep)}
    assert abs(big.mean() - 1.0) < 0.02


def test_drop_path_module_draws_from_the_dropout_stream():
    rate, batch = 0.5, 64
    x = jnp.asarray(np.random.default_rng(1).normal(size=(batch, 5, 3)), jnp.float32)
    def run(key):
        return np.asarray(DropPath(rate).apply({}, x, train=True, rngs={"dropout": key}))
    y = run(jax.random.key(42))
    kept = (y != 0).all(axis=(1, 2))
    assert ((y == 0).all(axis=(1, 2)) | kept).all()           # whole samples
    np.testing.assert_array_equal(y[kept], np.asarray(x)[kept] * 2.0)
    np.testing.assert_array_equal(run(jax.random.key(42)), y)  # same key, same draw
    assert not np.array_equal((run(jax.random.key(7)) != 0).all(axis=(1, 2)), kept)


def test_drop_path_is_the_identity_in_eval_mode_and_at_rate_zero():
    x = jnp.asarray(np.random.default_rng(2).normal(size=(4, 5, 3)), jnp.float32)
    np.testing.assert_array_equal(DropPath(0.5).apply({}, x, train=False), x)   # no rng needed
    np.testing.assert_array_equal(DropPath(0.0).apply({}, x, train=True), x)
    np.testing.assert_array_equal(DropPath(1.0).apply({}, x, train=True, rngs={"dropout": jax.random.key(0)}),
                                  np.zeros_like(x))


def test_transformer_block_drops_each_branch_per_sample():
    """With rate 0.5 each sample's attention and MLP branches are each kept (x2) or dropped: the block's
    output is one of the four outputs of the same block with those branch scales fixed by hand."""
    block = TransformerBlock(heads=2, drop_path_rate=0.5)
    x = jnp.asarray(np.random.default_rng(3).normal(size=(16, 16, 8)), jnp.float32)
    variables = block.init(jax.random.key(0), x, None, train=False)
    y = np.asarray(block.apply(variables, x, None, train=True, rngs={"dropout": jax.random.key(5)}))

    def with_scales(a, b):
        scales = iter([a, b])

        def fixed(next_fun, args, kwargs, context):
            if isinstance(context.module, DropPath):
                return args[0] * next(scales)
            return next_fun(*args, **kwargs)

        with nn.intercept_methods(fixed):
            return np.asarray(block.apply(variables, x, None, train=True))

    candidates = {(a, b): with_scales(a, b) for a in (0.0, 2.0) for b in (0.0, 2.0)}
    seen = set()
    for s in range(x.shape[0]):
        match = [ab for ab, c in candidates.items() if np.allclose(y[s], c[s], rtol=1e-5, atol=1e-6)]
        assert len(match) == 1, (s, match)
        seen.add(match[0])
    assert len(seen) > 2   # the two branches are drawn independently, not one decision per sample


def test_drop_path_rate_option_is_validated():
    assert create_model("ralenet").drop_path_rate == 0.0    # the reference's default
    assert create_model("ralenet", drop_path_rate="0.1").drop_path_rate == "0.1"
    for bad in (-0.1, 1.5, "often"):
        with pytest.raises(ConfigError, match="drop_path_rate.*from 0 to 1"):
            create_model("ralenet", drop_path_rate=bad)


def test_network_train_mode_draws_dropout_only_with_a_positive_rate():
    x = jnp.asarray(np.random.default_rng(4).normal(size=(2, 32, 2)), jnp.float32)
    plain, stochastic = create_model("ralenet"), create_model("ralenet", drop_path_rate=0.5)
    variables = jax.jit(lambda: plain.init(jax.random.key(0), x, train=False),
                        compiler_options=FAST_COMPILE)()
    run = jax.jit(lambda m, key: m.apply(variables, x, train=True, mutable=["batch_stats"],
                                         rngs={"dropout": key})[0], static_argnums=0,
                  compiler_options=FAST_COMPILE)
    out_plain = run(plain, jax.random.key(1))
    np.testing.assert_array_equal(run(plain, jax.random.key(2)), out_plain)   # rate 0: the key is unused
    a, b = run(stochastic, jax.random.key(1)), run(stochastic, jax.random.key(2))
    np.testing.assert_array_equal(run(stochastic, jax.random.key(1)), a)
    assert not np.allclose(a, b) and not np.allclose(a, out_plain)
    eval_out = jax.jit(lambda: stochastic.apply(variables, x, train=False))()
    np.testing.assert_allclose(eval_out, jax.jit(lambda: plain.apply(variables, x, train=False))(), rtol=1e-6)


# ---------------------------------------------------------------- lengths

@pytest.mark.parametrize("length", [16, 128, 256, 512, 1024])
def test_any_length_divisible_by_16(length):
    model = create_model("ralenet")
    x = jax.ShapeDtypeStruct((2, length, 2), jnp.float32)
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, length, 2)), train=False))
    assert jax.eval_shape(lambda v, x: model.apply(v, x, train=False), shapes, x).shape == (2, length, 2)


def test_length_not_divisible_by_16_is_a_config_error():
    with pytest.raises(ConfigError, match="divisible by 16"):
        create_model("ralenet").init(jax.random.key(0), jnp.zeros((1, 40, 2)), train=False)


# ---------------------------------------------------------------- the training engine's dropout stream

def test_engine_step_with_ralenet_is_reproducible_and_draws_anew_each_step():
    window, n_train, batch = 32, 8, 4
    rng = np.random.default_rng(0)
    data = SplitArrays(rng.normal(size=(n_train, window, 2)).astype(np.float32),
                       rng.normal(size=(3, n_train, window, 2)).astype(np.float32))
    consts = MemberConsts(noise_weights=np.eye(3, dtype=np.float32)[:1], noise_divisor=np.ones(1, np.float32),
                          scale_each=np.zeros(1, bool), prescaled=np.zeros(1, bool),
                          snr_db=np.zeros(1, np.float32), mean=np.zeros((1, 2), np.float32),
                          std=np.ones((1, 2), np.float32))
    s = engine.TrainSettings(batch_size=batch, steps_per_epoch=2, window=window, channels=2, learning_rate=1e-3,
                             lr_decay_epoch=10, lr_decay_factor=0.1)
    model = create_model("ralenet", drop_path_rate=0.5)
    state = jax.jit(engine.over_members(engine.make_init_one(model, s), "vmap", 1),
                    compiler_options=FAST_COMPILE)(jnp.zeros(1, jnp.int32))
    step = jax.jit(engine.make_member_step(model, s), compiler_options=FAST_COMPILE)
    # Both steps of the epoch see the same batch, so only the dropout draw can tell them apart.
    order = jnp.tile(jnp.arange(batch, dtype=jnp.int32), (1, 2, 1))
    first, loss0 = step(state, consts, order, data, jnp.int32(0))
    again, loss0_again = step(state, consts, order, data, jnp.int32(0))
    second, loss1 = step(state, consts, order, data, jnp.int32(1))
    np.testing.assert_array_equal(loss0_again, loss0)
    jax.tree_util.tree_map(np.testing.assert_array_equal, again.params, first.params)
    assert float(loss1[0]) != float(loss0[0])
    # The draw is a function of the member's epoch key: another key (next epoch), another draw.
    other_epoch = state._replace(rng=jax.vmap(lambda k: jax.random.split(k)[0])(state.rng))
    _, loss_other = step(other_epoch, consts, order, data, jnp.int32(0))
    assert float(loss_other[0]) != float(loss0[0])
    assert np.isfinite(np.asarray([loss0, loss1, loss_other])).all()
