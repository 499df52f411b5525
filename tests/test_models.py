"""Tests of the model zoo: layers against PyTorch arithmetic, blocks, networks, registry.

Compiling a network's random initialiser is slow on CPU (one threefry kernel
per parameter), so the network-level tests fill the variable tree (shapes from
`jax.eval_shape`) with NumPy values at PyTorch's init scale; the initialisers
themselves are tested on single layers. Compiled functions are shared per
network through module-scoped fixtures.
"""

from __future__ import annotations

import re

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ecg_jax.errors import ConfigError
from ecg_jax.models import (
    DISPLAY_NAMES,
    MODEL_NAMES,
    REFERENCE_PARAM_COUNTS,
    count_params,
    create_model,
    model_options,
    reference_param_count,
)
from ecg_jax.models.blocks import (
    CAC,
    CSE,
    DAM,
    ECA,
    APReLU,
    AttentionGate,
    ChannelShrink,
    Shrinkage,
    SpatialShrink,
    soft_threshold,
)
from ecg_jax.models.layers import (
    BatchNorm,
    Conv1d,
    ConvTranspose1d,
    Dense,
    conv1d,
    leaky_relu,
    max_pool2,
    upsample_linear2,
)

TEST_LENGTH = 64  # divisible by 16; compile time does not depend on it
CIADNET_SWITCHES = [(True, True), (True, False), (False, True), (False, False)]


# ---------------------------------------------------------------- helpers

# XLA's CPU backend spends most of a test's time optimising code that runs once
# on a tiny batch; its lowest optimisation level compiles 2-5x faster and gives
# the same results to float32 rounding.
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def fast_jit(fn):
    return jax.jit(fn, compiler_options=FAST_COMPILE)


def variable_shapes(module: nn.Module, *args, **kwargs):
    """The variable tree of `module` as shapes (traces `init`, compiles nothing)."""
    return jax.eval_shape(lambda: module.init(jax.random.key(0), *args, **kwargs))


def numpy_variables(module: nn.Module, *args, seed: int = 0, shapes=None, **kwargs):
    """Variables of `module` filled with NumPy draws: weights at PyTorch's scale,
    BatchNorm scale near 1 and running stats away from (0, 1) so that eval mode
    is not a no-op. `shapes` skips re-tracing `init` when the tree is known."""
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = path[-1].key
        collection = path[0].key
        if collection == "batch_stats":
            return (rng.uniform(0.5, 1.5, leaf.shape) if name == "var"
                    else rng.normal(0.0, 0.1, leaf.shape)).astype(np.float32)
        if name == "scale":
            return rng.uniform(0.5, 1.5, leaf.shape).astype(np.float32)
        if name == "kernel":
            bound = 1.0 / np.sqrt(np.prod(leaf.shape[:-1]) if len(leaf.shape) > 1 else leaf.size)
            return rng.uniform(-bound, bound, leaf.shape).astype(np.float32)
        return rng.uniform(-0.1, 0.1, leaf.shape).astype(np.float32)

    if shapes is None:
        shapes = variable_shapes(module, *args, **kwargs)
    return jax.tree_util.tree_map_with_path(fill, shapes)


def random_input(shape, seed: int = 1, scale: float = 1.0) -> jax.Array:
    return jnp.asarray(scale * np.random.default_rng(seed).normal(size=shape), jnp.float32)


def torch_conv_transpose_loop(x, w, stride, padding, output_padding):
    """Direct transcription of PyTorch ConvTranspose1d: y[t*s + j - p] += x[t] @ w[j]."""
    batch, length, _ = x.shape
    k, _, out_ch = w.shape
    out_len = (length - 1) * stride - 2 * padding + k + output_padding
    y = np.zeros((batch, out_len, out_ch))
    for t in range(length):
        for j in range(k):
            n = t * stride + j - padding
            if 0 <= n < out_len:
                y[:, n] += x[:, t] @ w[j]
    return y


def torch_conv_loop(x, w, stride, padding):
    """Direct transcription of PyTorch Conv1d (cross-correlation, zero padding)."""
    batch, length, _ = x.shape
    k, _, out_ch = w.shape
    xp = np.pad(x, ((0, 0), (padding, padding), (0, 0)))
    out_len = (length + 2 * padding - k) // stride + 1
    y = np.zeros((batch, out_len, out_ch))
    for n in range(out_len):
        for j in range(k):
            y[:, n] += xp[:, n * stride + j] @ w[j]
    return y


def gates(module: nn.Module, variables, *args):
    _, state = module.apply(variables, *args, train=False, mutable=["intermediates"])
    return jax.tree_util.tree_leaves(state["intermediates"])


# ---------------------------------------------------------------- layers

def test_soft_threshold_hand_values():
    x = jnp.array([-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.5])
    y = soft_threshold(x, 1.0)
    np.testing.assert_allclose(y, [-2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.5])


def test_upsample_matches_pytorch_half_pixel_linear_with_edge_clamping():
    x = jnp.array([1.0, 2.0, 4.0]).reshape(1, 3, 1)
    # PyTorch Upsample(scale_factor=2, mode="linear", align_corners=False)([1, 2, 4])
    expected = [1.0, 1.25, 1.75, 2.5, 3.5, 4.0]
    np.testing.assert_allclose(upsample_linear2(x)[0, :, 0], expected)


def test_upsample_rounds_like_separate_multiplies_and_adds():
    """0.75 x is written as x - x/4 so that every product is exact: the value is numpy's
    float32 round(0.25 a) + round(0.75 b), bit for bit, whatever XLA fuses into an FMA."""
    x = np.asarray(random_input((2, 33, 3)))
    p = np.pad(x, ((0, 0), (1, 1), (0, 0)), mode="edge")
    q, t = np.float32(0.25), np.float32(0.75)
    expected = np.stack([q * p[:, :-2] + t * x, t * x + q * p[:, 2:]], axis=2).reshape(2, 66, 3)
    np.testing.assert_array_equal(jax.jit(upsample_linear2)(jnp.asarray(x)), expected)


def test_upsample_gradients_do_not_depend_on_how_the_step_is_fused():
    """AGS-UNet's decoder, LReLU(upsample(ConvTranspose(x))): its gradients inside a loop that
    updates the parameters in place (a scanned epoch) equal those of a plain step. With 0.75 * x
    they differed by a bit, XLA:CPU contracting a multiply-add into an FMA in one and not the other."""
    layer = ConvTranspose1d(8, 5)
    x = random_input((16, 64, 4))
    params = layer.init(jax.random.key(0), x)["params"]
    grad = jax.grad(lambda p: jnp.mean((leaky_relu(upsample_linear2(layer.apply({"params": p}, x))) - 0.5) ** 2))

    def in_loop(n, p):
        def body(_, carry):
            g = grad(carry[0])
            return jax.tree_util.tree_map(lambda a, b: a - 1e-3 * b, carry[0], g), g
        return jax.lax.fori_loop(0, n, body, (p, jax.tree_util.tree_map(jnp.zeros_like, p)))[1]

    for a, b in zip(jax.tree_util.tree_leaves(jax.jit(grad)(params)),
                    jax.tree_util.tree_leaves(jax.jit(in_loop)(jnp.int32(1), params)), strict=True):
        np.testing.assert_array_equal(b, a)


def test_max_pool_by_two():
    x = jnp.array([1.0, 3.0, -2.0, -5.0, 7.0]).reshape(1, 5, 1)
    np.testing.assert_array_equal(max_pool2(x)[0, :, 0], [3.0, -2.0])


@pytest.mark.parametrize("kernel,stride,padding,output_padding", [
    (7, 2, 3, 1),    # DACNN decoder
    (13, 2, 6, 1),   # DACNN last level
    (5, 1, 2, 0),    # AGS-UNet / CIADNet 'same'
    (11, 1, 5, 0),
])
def test_conv_transpose_matches_pytorch_loop(kernel, stride, padding, output_padding):
    x = random_input((2, 8, 3))
    layer = ConvTranspose1d(4, kernel, stride=stride, padding=padding,
                            output_padding=output_padding, use_bias=False)
    variables = numpy_variables(layer, x)
    y = layer.apply(variables, x)
    w = np.asarray(variables["params"]["kernel"], np.float64)
    expected = torch_conv_transpose_loop(np.asarray(x, np.float64), w, stride, padding,
                                         output_padding)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, atol=1e-5)


@pytest.mark.parametrize("kernel", [3, 7, 13, 17])  # paper DACNN 7, 13; dacnn_final 3, 17
@pytest.mark.parametrize("length", [16, 32, 40])
def test_dacnn_transposed_conv_exactly_doubles_length(kernel, length):
    layer = ConvTranspose1d(2, kernel, stride=2, padding=(kernel - 1) // 2, output_padding=1)
    out = jax.eval_shape(lambda: layer.apply(numpy_variables(layer, jnp.zeros((1, length, 3))),
                                             jnp.zeros((1, length, 3))))
    assert out.shape == (1, 2 * length, 2)


@pytest.mark.parametrize("kernel,stride", [(13, 2), (7, 2), (5, 1)])
def test_conv_matches_pytorch_loop(kernel, stride):
    x = random_input((2, 16, 3))
    layer = Conv1d(4, kernel, stride=stride, use_bias=False)
    variables = numpy_variables(layer, x)
    expected = torch_conv_loop(np.asarray(x, np.float64),
                               np.asarray(variables["params"]["kernel"], np.float64),
                               stride, (kernel - 1) // 2)
    np.testing.assert_allclose(layer.apply(variables, x), expected, atol=1e-5)


# (length, taps, stride, padding, lhs_dilation): every kind of convolution the networks use --
# 'same' convolutions, DACNN's strided encoder, transposed convolutions (lhs-dilated, uneven padding).
CONV_CASES = [(64, 13, 1, (6, 6), 1), (64, 7, 2, (3, 3), 1), (33, 4, 2, (1, 1), 1), (16, 7, 1, (3, 4), 2),
              (16, 13, 1, (6, 7), 2), (32, 5, 1, (2, 2), 1), (8, 1, 1, (0, 0), 1)]


@pytest.mark.parametrize("length,taps,stride,padding,lhs_dilation", CONV_CASES)
def test_conv1d_gradients_equal_jax_autodiff_bit_for_bit(length, taps, stride, padding, lhs_dilation):
    """`layers.conv1d` on CPU writes its gradients in XLA:CPU's canonical layout (see its comment):
    the value and both gradients equal JAX's own differentiation of the same convolution exactly."""
    x, kernel = random_input((3, length, 5)), random_input((taps, 5, 6))
    def plain(x, k):
        return jax.lax.conv_general_dilated(x, k, (stride,), [padding], lhs_dilation=(lhs_dilation,),
                                            dimension_numbers=("NWC", "WIO", "NWC"))
    def ours(x, k):
        return conv1d(x, k, stride, padding, lhs_dilation)
    y, pull = jax.vjp(plain, x, kernel)
    y_ours, pull_ours = jax.vjp(ours, x, kernel)
    g = random_input(y.shape)
    np.testing.assert_array_equal(y_ours, y)
    (dx_ours, dk_ours), (dx_jax, dk_jax) = pull_ours(g), pull(g)
    np.testing.assert_array_equal(dx_ours, dx_jax)
    if lhs_dilation == 1:
        np.testing.assert_array_equal(dk_ours, dk_jax)
    else:
        # A transposed convolution's kernel gradient is one matrix product (layers._dilated_kernel_gradient):
        # the same sums in another order. Against float64: as close as JAX's own, to a few float32 ulps.
        x64, g64 = np.asarray(x, np.float64), np.asarray(g, np.float64)
        dilated = np.zeros((x.shape[0], (length - 1) * lhs_dilation + 1, x.shape[2]))
        dilated[:, ::lhs_dilation] = x64
        padded = np.pad(dilated, ((0, 0), padding, (0, 0)))
        exact = np.stack([np.einsum("bti,bto->io", padded[:, j:j + g.shape[1]], g64) for j in range(taps)])
        scale = np.max(np.abs(exact))
        ours_error = np.max(np.abs(np.asarray(dk_ours, np.float64) - exact)) / scale
        jax_error = np.max(np.abs(np.asarray(dk_jax, np.float64) - exact)) / scale
        assert ours_error < 4e-7 and ours_error <= 2 * jax_error + 1e-7, (ours_error, jax_error)


def _gradient_convolutions(f, x, kernel, platform: str) -> list[str]:
    """The convolutions of d/d(x, kernel) of sum(sin(f)) lowered for `platform`, operand names blanked."""
    def loss(x, k):
        return jnp.sum(jnp.sin(f(x, k)))
    text = jax.jit(jax.grad(loss, argnums=(0, 1))).trace(x, kernel).lower(lowering_platforms=(platform,)).as_text()
    return sorted(re.sub(r"%[\w#]+", "%", line.strip()) for line in text.splitlines()
                  if "stablehlo.convolution" in line)


@pytest.mark.parametrize("stride,padding,lhs_dilation", [(2, (2, 2), 1), (1, (3, 4), 2)])
def test_conv1d_gradient_platform_is_chosen_when_lowering(stride, padding, lhs_dilation):
    """Lowered here for CUDA or TPU (as scripts/export_programs.py does), the gradient is exactly the
    convolutions of JAX's own differentiation (what cuDNN and the TPU compiler pattern-match); lowered for
    the CPU, the ones in XLA:CPU's canonical layout. The choice is `lax.platform_dependent`'s, made per
    lowering platform, not this process's backend."""
    x, kernel = random_input((2, 16, 3)), random_input((5, 3, 4))
    def plain(x, k):
        return jax.lax.conv_general_dilated(x, k, (stride,), [padding], lhs_dilation=(lhs_dilation,),
                                            dimension_numbers=("NWC", "WIO", "NWC"))
    def ours(x, k):
        return conv1d(x, k, stride, padding, lhs_dilation)
    for platform in ("cuda", "tpu"):
        mine = _gradient_convolutions(ours, x, kernel, platform)
        assert len(mine) == 3 and mine == _gradient_convolutions(plain, x, kernel, platform), platform
    assert _gradient_convolutions(ours, x, kernel, "cpu") != _gradient_convolutions(plain, x, kernel, "cpu")


def test_conv1d_gradients_inside_a_loop_body_equal_the_top_level_ones():
    """The reason for the CPU gradient: computed inside `lax.scan` (a loop body, where XLA:CPU does
    not rewrite convolutions) they are the same bits as at the top level of a program."""
    x, kernel = random_input((4, 32, 5)), random_input((7, 5, 6))
    grads = jax.grad(lambda x, k: jnp.sum(jnp.tanh(conv1d(x, k, 2, (3, 3), 1))), argnums=(0, 1))
    top = jax.jit(grads)(x, kernel)
    looped = jax.jit(lambda x, k: jax.lax.scan(lambda c, _: (c, grads(x, c)), k, jnp.arange(2))[1])(x, kernel)
    for a, b in zip(top, looped, strict=True):
        np.testing.assert_array_equal(b[0], a)
        np.testing.assert_array_equal(b[1], a)


def test_initialisers_follow_pytorch_fan_in():
    x = jnp.zeros((1, 8, 40))

    def init_layers(key):
        return (Conv1d(3, 5).init(key, x)["params"], ConvTranspose1d(3, 5).init(key, x)["params"],
                Dense(3).init(key, x[:, 0])["params"], ECA().init(key, x, train=False)["params"],
                BatchNorm().init(key, x, train=False))

    conv, convt, dense, eca, bn = fast_jit(init_layers)(jax.random.key(0))
    # Conv1d: fan_in = in * k = 200; ConvTranspose1d: weight (in, out, k) -> fan_in = out * k = 15.
    for tree, fan_in in [(conv, 200), (convt, 15), (dense, 40)]:
        bound = 1.0 / np.sqrt(fan_in)
        for leaf in (tree["kernel"], tree["bias"]):
            assert float(jnp.max(jnp.abs(leaf))) <= bound
        assert float(jnp.max(jnp.abs(tree["kernel"]))) > 0.8 * bound  # uses the whole range
    assert float(jnp.max(jnp.abs(eca["kernel"]))) <= 1.0 / np.sqrt(3)  # Conv1d(1, 1, 3)
    np.testing.assert_array_equal(bn["params"]["scale"], np.ones(40))
    np.testing.assert_array_equal(bn["params"]["bias"], np.zeros(40))
    np.testing.assert_array_equal(bn["batch_stats"]["var"], np.ones(40))


def test_batchnorm_matches_pytorch_train_and_running_stats():
    x = jnp.array([1.0, 2.0, 3.0, 6.0]).reshape(2, 2, 1)
    bn = BatchNorm()
    variables = bn.init(jax.random.key(0), x, train=False)
    y, state = bn.apply(variables, x, train=True, mutable=["batch_stats"])
    # Batch mean 3, biased var 3.5 (normalises), unbiased var 14/3 (running stats).
    np.testing.assert_allclose(y.ravel(), (np.array([1, 2, 3, 6]) - 3.0) / np.sqrt(3.5 + 1e-5),
                               rtol=1e-6)
    np.testing.assert_allclose(state["batch_stats"]["mean"], [0.9 * 0.0 + 0.1 * 3.0], rtol=1e-6)
    np.testing.assert_allclose(state["batch_stats"]["var"], [0.9 * 1.0 + 0.1 * 14.0 / 3.0],
                               rtol=1e-6)
    # Eval mode normalises with the running stats.
    y_eval = bn.apply({**variables, "batch_stats": state["batch_stats"]}, x, train=False)
    np.testing.assert_allclose(y_eval.ravel(),
                               (np.array([1, 2, 3, 6]) - 0.3) / np.sqrt(0.9 + 1.4 / 3 + 1e-5),
                               rtol=1e-6)


# ---------------------------------------------------------------- blocks

@pytest.mark.parametrize("block,args", [
    (CAC(), 1), (ChannelShrink(), 1), (CSE(), 1), (SpatialShrink(), 1), (Shrinkage(), 1),
    (APReLU(), 1), (DAM(), 1), (ECA(), 1), (AttentionGate(), 2),
], ids=lambda v: type(v).__name__ if isinstance(v, nn.Module) else str(v))
def test_block_gates_lie_in_open_unit_interval(block, args):
    inputs = [random_input((3, 16, 8), seed=s, scale=2.0) for s in range(args)]
    variables = numpy_variables(block, *inputs, train=False)
    y = block.apply(variables, *inputs, train=False)
    assert y.shape == inputs[-1].shape
    found = gates(block, variables, *inputs)
    assert found, "block recorded no gate"
    for g in found:
        assert bool(jnp.all((g > 0) & (g < 1)))


def test_channel_shrink_zeroes_small_values_and_keeps_sign():
    block = CAC()
    x = random_input((2, 32, 4), scale=3.0)
    variables = numpy_variables(block, x, train=False)
    y = block.apply(variables, x, train=False)
    (a,) = gates(block, variables, x)
    threshold = jnp.mean(jnp.abs(x), axis=1, keepdims=True) * a[:, None, :]
    expected = jnp.where(jnp.abs(x) > threshold, x - jnp.sign(x) * threshold, 0.0)
    np.testing.assert_allclose(y, expected, atol=1e-6)
    assert bool(jnp.all(y * x >= 0))


def test_eca_mixes_neighbouring_channels_not_time_steps():
    block = ECA()
    x = random_input((1, 32, 8))
    variables = {"params": {"kernel": jnp.array([0.3, -0.2, 0.5])}}
    (g,) = gates(block, variables, x)
    assert g.shape == (1, 8)  # one gate per channel: constant over time
    np.testing.assert_allclose(block.apply(variables, x, train=False), x * g[:, None, :],
                               rtol=1e-6)
    x_perturbed = x.at[:, :, 4].add(1.0)
    (g_perturbed,) = gates(block, variables, x_perturbed)
    changed = np.flatnonzero(np.abs(np.asarray(g_perturbed - g))[0] > 1e-7)
    np.testing.assert_array_equal(changed, [3, 4, 5])
    # Hand value for channel 0 (zero padding on the left): sigmoid(-0.2 z0 + 0.5 z1).
    z = np.asarray(jnp.mean(x, axis=1))[0]
    np.testing.assert_allclose(g[0, 0], 1 / (1 + np.exp(-(-0.2 * z[0] + 0.5 * z[1]))), rtol=1e-5)


def test_dam_shares_one_channel_mlp_between_poolings():
    block = DAM()
    x = random_input((3, 16, 8))
    variables = numpy_variables(block, x, train=False)
    params = variables["params"]
    assert set(params) == {"channel_mlp", "spatial_conv"}
    assert set(params["channel_mlp"]) == {"fc1", "bn1", "fc2", "bn2"}
    c = 8
    assert count_params(params) == 2 * c * c + 6 * c + 3
    # Channel weights equal sigmoid(f(GAP) + f(GMP)) with that single f, by hand.
    p, s = params["channel_mlp"], variables["batch_stats"]["channel_mlp"]

    def mlp(z):
        def bn(h, name):
            return ((h - s[name]["mean"]) / jnp.sqrt(s[name]["var"] + 1e-5)
                    * p[name]["scale"] + p[name]["bias"])
        h = jax.nn.relu(bn(z @ p["fc1"]["kernel"] + p["fc1"]["bias"], "bn1"))
        return jax.nn.sigmoid(bn(h @ p["fc2"]["kernel"] + p["fc2"]["bias"], "bn2"))

    _, state = block.apply(variables, x, train=False, mutable=["intermediates"])
    w = state["intermediates"]["channel_gate"][0]
    np.testing.assert_allclose(w, jax.nn.sigmoid(mlp(x.mean(1)) + mlp(x.max(1))), rtol=1e-5)


# ---------------------------------------------------------------- networks

@pytest.mark.parametrize("name", MODEL_NAMES)
def test_param_count_matches_reference(name):
    model = create_model(name)
    shapes = variable_shapes(model, jnp.zeros((1, 256, 2)), train=False)
    assert count_params(shapes["params"]) == REFERENCE_PARAM_COUNTS[name]


@pytest.mark.parametrize("channel,spatial", CIADNET_SWITCHES)
def test_ciadnet_variant_param_counts(channel, spatial):
    model = create_model("ciadnet", channel_shrink=channel, spatial_shrink=spatial)
    shapes = variable_shapes(model, jnp.zeros((1, 256, 2)), train=False)
    expected = {(True, True): 279_578, (True, False): 202_338,
                (False, True): 235_098, (False, False): 157_858}[(channel, spatial)]
    assert count_params(shapes["params"]) == expected
    assert REFERENCE_PARAM_COUNTS[("ciadnet", channel, spatial)] == expected
    assert reference_param_count("ciadnet", channel_shrink=channel,
                                 spatial_shrink=spatial) == expected


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("length", [256, 512])
def test_output_shape_equals_input_shape(name, length):
    model = create_model(name)
    x = jax.ShapeDtypeStruct((3, length, 2), jnp.float32)
    shapes = variable_shapes(model, x, train=False)
    out = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), shapes, x)
    assert (out.shape, out.dtype) == ((3, length, 2), jnp.float32)


def test_length_not_divisible_by_16_is_a_config_error():
    with pytest.raises(ConfigError, match="divisible by 16"):
        variable_shapes(create_model("unet"), jnp.zeros((1, 100, 2)), train=False)


def force_batchnorm_train(next_fun, args, kwargs, context):
    """Interceptor: run every BatchNorm in train mode, whatever the network was told."""
    if isinstance(context.module, BatchNorm) and context.method_name == "__call__":
        return next_fun(args[0], train=True)
    return next_fun(*args, **kwargs)


class Compiled:
    """A network with NumPy-filled variables and its jitted eval/train functions."""

    def __init__(self, name: str):
        self.name = name
        self.model = model = create_model(name)
        self.x = random_input((2, TEST_LENGTH, 2))
        self.shapes = variable_shapes(model, self.x, train=False)
        self.variables = numpy_variables(model, shapes=self.shapes)
        self.has_batchnorm = "batch_stats" in self.variables

        def eval_fn(v, x):
            return model.apply(v, x, train=False)

        def train_fn(v, x):
            return model.apply(v, x, train=True, mutable=["batch_stats"])

        def eval_with_batchnorm_in_train_mode(v, x):
            with nn.intercept_methods(force_batchnorm_train):
                return model.apply(v, x, train=False, mutable=["batch_stats"])[0]

        # chex identifies a function by its source and definition stack, the same
        # for every network here, so reset its counters for each new network.
        chex.clear_trace_counter()
        self.eval = fast_jit(chex.assert_max_traces(eval_fn, n=1))
        self.train = fast_jit(train_fn)
        self.vmapped_train = fast_jit(jax.vmap(train_fn, in_axes=(0, None)))
        self.eval_bn_train = fast_jit(eval_with_batchnorm_in_train_mode)


@pytest.fixture(scope="module", params=MODEL_NAMES)
def compiled(request) -> Compiled:
    return Compiled(request.param)


def test_compiles_once_and_outputs_are_finite(compiled):
    x = compiled.x
    for inputs in (x, jnp.zeros_like(x), 1e3 * x, -x):
        out = compiled.eval(compiled.variables, inputs)
        assert out.shape == x.shape
        assert bool(jnp.all(jnp.isfinite(out)))
    assert float(jnp.std(compiled.eval(compiled.variables, x))) > 0


def test_train_and_eval_differ_only_through_batchnorm(compiled):
    v, x = compiled.variables, compiled.x
    out_train, state = compiled.train(v, x)
    out_eval = compiled.eval(v, x)
    if not compiled.has_batchnorm:
        assert compiled.name in ("unet", "acdae", "acdae_final")
        assert state == {}
        np.testing.assert_array_equal(out_train, out_eval)
        return
    assert float(jnp.max(jnp.abs(out_train - out_eval))) > 1e-2
    # Eval mode with every BatchNorm switched to train mode reproduces train mode
    # (up to float reassociation between two compiled graphs, which BatchNorm over
    # a batch of 2 amplifies): no other layer looks at `train`.
    np.testing.assert_allclose(compiled.eval_bn_train(v, x), out_train, rtol=1e-3, atol=2e-4)
    changed = jax.tree_util.tree_map(lambda a, b: not np.allclose(a, b), state["batch_stats"],
                                     v["batch_stats"])
    assert all(jax.tree_util.tree_leaves(changed))  # every running stat was updated


def test_vmap_over_independent_parameter_sets_equals_loop(compiled):
    members = [compiled.variables, numpy_variables(compiled.model, shapes=compiled.shapes, seed=7)]
    stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *members)
    out, state = compiled.vmapped_train(stacked, compiled.x)
    for m, member in enumerate(members):
        out_m, state_m = compiled.train(member, compiled.x)
        np.testing.assert_allclose(out[m], out_m, rtol=1e-4, atol=1e-4)  # see BN note above
        # Running statistics of BatchNorms over pooled features (a batch of 2 values: APReLU, DAM)
        # carry the output's reassociation noise too; dacnn_final's reach 6e-5 on one entry.
        jax.tree_util.tree_map(
            lambda a, b, m=m: np.testing.assert_allclose(a[m], b, rtol=1e-4, atol=1e-4),
            state, state_m)
    assert not np.allclose(out[0], out[1])


# ---------------------------------------------------------------- registry

def test_registry_names():
    assert MODEL_NAMES[:6] == ("unet", "dacnn", "acdae", "ags_unet", "ciadnet", "dancer")
    assert MODEL_NAMES[6:] == ("drsn", "dacnn_final", "acdae_final", "ralenet", "dance_final",
                               "dance_final_se", "dance_final_cbam", "dance_final_eca",
                               "dance_final_atnc", "dance_final_arem")
    assert set(DISPLAY_NAMES) == set(MODEL_NAMES)
    assert DISPLAY_NAMES["ags_unet"] == "AGS-UNet"


def test_a_network_that_cannot_be_built_faithfully_says_why_in_one_line(monkeypatch):
    """None is unavailable now; the mechanism stays for the next one."""
    import ecg_jax.models as models

    assert models.UNAVAILABLE_MODELS == {}
    assert create_model("dacnn_final") is not None and "dacnn_final" in MODEL_NAMES
    monkeypatch.setitem(models.UNAVAILABLE_MODELS, "some_final_net", "its source is missing")
    with pytest.raises(ConfigError, match="'some_final_net' is not available: its source is missing"):
        create_model("some_final_net")


def test_dacnn_final_is_its_own_stride_1_network():
    from ecg_jax.models.dacnn import DACNN, DACNNFinal

    model = create_model("dacnn_final")
    assert type(model) is DACNNFinal and not isinstance(model, DACNN)
    assert (model.encoder_kernels, model.decoder_kernels) == ((17, 17, 3, 3), (3, 3, 17, 17))
    assert (DACNN.encoder_kernels, DACNN.decoder_kernels) == ((13, 7, 7, 7), (7, 7, 7, 13))
    assert model_options("dacnn_final") == {}
    assert reference_param_count("dacnn_final") == 258_457
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 64, 2)), train=False))
    assert count_params(shapes["params"]) == 258_457
    for length in (48, 40):   # three poolings: any multiple of 8
        out = jax.eval_shape(lambda v, length=length: model.apply(v, jnp.zeros((2, length, 2)), train=False), shapes)
        assert out.shape == (2, length, 2)


def test_unknown_model_is_a_config_error_listing_valid_names():
    with pytest.raises(ConfigError, match="unknown model 'resnet'.*unet.*dancer"):
        create_model("resnet")


def test_unknown_override_is_a_config_error():
    with pytest.raises(ConfigError, match="no option 'depth'.*channel_shrink"):
        create_model("ciadnet", depth=3)
    with pytest.raises(ConfigError, match="no option 'channel_shrink'"):
        create_model("unet", channel_shrink=True)


def test_ciadnet_switches_default_on_and_accept_strings():
    assert model_options("ciadnet") == {"channel_shrink": True, "spatial_shrink": True}
    model = create_model("ciadnet", channel_shrink="false")
    assert (model.channel_shrink, model.spatial_shrink) == (False, True)
    with pytest.raises(ConfigError, match="true or false"):
        create_model("ciadnet", spatial_shrink="maybe")


def test_model_summary_lists_a_network_not_built_with_its_reference_count(monkeypatch):
    """`ecg-jax summary`: every network of models.md has a row; one not built says so."""
    import ecg_jax.models as models
    import ecg_jax.models.summary as summary

    monkeypatch.setitem(models.REFERENCE_PARAM_COUNTS, "some_final_net", 123_456)
    monkeypatch.setitem(summary.UNAVAILABLE_MODELS, "some_final_net", "its source is missing")
    text = summary.summarise_models(["some_final_net"], batch=1, length=16, repeats=1)
    row = next(line for line in text.splitlines() if line.startswith("some_final_net"))
    assert row.split()[1:5] == ["—", "123,456", "not", "built"]
    assert "UNAVAILABLE_MODELS" in text


def test_model_summary_measures_dacnn_final():
    from ecg_jax.models.summary import summarise_models

    text = summarise_models(["dacnn_final"], batch=1, length=16, repeats=1)
    row = next(line for line in text.splitlines() if line.startswith("DACNN (final)"))
    assert row.split()[2:5] == ["258,457", "258,457", "yes"]
