"""Layers with PyTorch's initialisation and arithmetic, in Flax's NLC layout.

The reference networks were written in PyTorch, so the layers here reproduce
what matters for a faithful comparison:

* initialisation: weights and biases uniform in +-1/sqrt(fan_in) (what
  PyTorch's `kaiming_uniform_(a=sqrt(5))` default amounts to), with fan_in
  computed the way `torch.nn.init._calculate_fan_in_and_fan_out` does it --
  note that for a transposed convolution PyTorch's weight is (in, out, k), so
  its fan_in is `out * k`;
* BatchNorm: eps 1e-5, momentum 0.1 in PyTorch terms, and running variance
  updated with the *unbiased* batch variance while normalising with the biased
  one;
* transposed convolution: PyTorch's `padding` / `output_padding` arithmetic;
* linear upsampling by 2 with half-pixel centres and edge clamping
  (`nn.Upsample(scale_factor=2, mode="linear", align_corners=False)`).

Tensors are (batch, length, channels) throughout; kernels are stored as
(k, in, out) ("WIO").
"""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from ecg_jax.errors import ConfigError

_CONV_DIMS = ("NWC", "WIO", "NWC")


def conv1d(x: jax.Array, kernel: jax.Array, stride: int = 1, padding: tuple[int, int] = (0, 0),
           lhs_dilation: int = 1) -> jax.Array:
    """Cross-correlation of (batch, length, in) with a (taps, in, out) kernel, as `lax.conv_general_dilated`.

    The value is always `lax.conv_general_dilated`'s. Its gradients depend on
    the platform the program is compiled for, chosen by
    `lax.platform_dependent` (so a program lowered here for GPU or TPU gets
    their version, whatever this process's backend): on CPU the same
    arithmetic written as convolutions in the one layout XLA:CPU hands to its
    Eigen kernels (`_cpu_conv1d_backward`); elsewhere JAX's own transpose
    rules, which cuDNN and the TPU compiler recognise. Being a custom VJP,
    it supports reverse-mode differentiation only (all training uses).
    """
    return _conv1d(x, kernel, stride, tuple(padding), lhs_dilation)


def _plain_conv1d(x, kernel, stride: int, padding: tuple[int, int], lhs_dilation: int) -> jax.Array:
    return lax.conv_general_dilated(x, kernel, window_strides=(stride,), padding=[padding],
                                    lhs_dilation=(lhs_dilation,), dimension_numbers=_CONV_DIMS)


# Why a CPU-specific gradient: JAX differentiates a convolution into two more
# convolutions with permuted dimension labels (kernel "0oi", input "f0b").
# XLA:CPU only rewrites such convolutions into its Eigen layout at the top
# level of a program; inside a loop body (`lax.scan` over steps, `lax.map`
# over members) they stay as generic loop nests, 15-30x slower and rounded
# differently (jax-ml/jax#12868). Writing the gradients with explicit
# transposes into that layout gives every position the same fast kernels, so
# a scanned epoch computes the same bits as steps dispatched one by one.
# The gradients equal JAX's own bit for bit (tests/test_models.py).
@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _conv1d(x, kernel, stride: int, padding: tuple[int, int], lhs_dilation: int) -> jax.Array:
    return _plain_conv1d(x, kernel, stride, padding, lhs_dilation)


def _conv1d_forward(x, kernel, stride, padding, lhs_dilation):
    return _plain_conv1d(x, kernel, stride, padding, lhs_dilation), (x, kernel)


def _conv1d_backward(stride, padding, lhs_dilation, residuals, g):
    # Decided when the program is lowered, per target platform: a program
    # lowered for one platform holds only that platform's branch.
    x, kernel = residuals
    return lax.platform_dependent(
        x, kernel, g,
        cpu=functools.partial(_cpu_conv1d_backward, stride, padding, lhs_dilation),
        default=functools.partial(_jax_conv1d_backward, stride, padding, lhs_dilation))


def _jax_conv1d_backward(stride, padding, lhs_dilation, x, kernel, g):
    """(d/dx, d/dkernel) by JAX's own transpose rules of the convolution (what autodiff emits)."""
    def conv(a, b):
        return _plain_conv1d(a, b, stride, padding, lhs_dilation)
    dx, = jax.linear_transpose(lambda a: conv(a, kernel), x)(g)
    dk, = jax.linear_transpose(lambda b: conv(x, b), kernel)(g)
    return dx, dk


def _dilated_length(n: int, dilation: int) -> int:
    return 0 if n == 0 else 1 + dilation * (n - 1)


def _cpu_conv1d_backward(stride, padding, lhs_dilation, x, kernel, g):
    """(d/dx, d/dkernel) of `_plain_conv1d`: JAX's transpose rules, with canonical dimension labels."""
    taps, low = kernel.shape[0], padding[0]
    x_len = _dilated_length(x.shape[1], lhs_dilation)
    g_len = _dilated_length(g.shape[1], stride)
    # d/dx: g correlated with the flipped kernel, its in and out swapped.
    before = taps - 1 - low
    after = x_len + taps - 1 - g_len - before
    flipped = jnp.transpose(kernel[::-1], (0, 2, 1))                      # (taps, out, in)
    dx = lax.conv_general_dilated(g, flipped, window_strides=(lhs_dilation,), padding=[(before, after)],
                                  lhs_dilation=(stride,), dimension_numbers=_CONV_DIMS)
    if lhs_dilation > 1 and stride == 1:
        return dx, _dilated_kernel_gradient(x, g, taps, low, lhs_dilation)
    # d/dkernel: x correlated with g over the batch; channels act as the batch, the batch as features.
    x_t = jnp.transpose(x, (2, 1, 0))                                      # (in, length, batch)
    g_t = jnp.transpose(g, (1, 0, 2))                                      # (out length, batch, out)
    high = (g_len - x_len) + (taps - 1 - low)
    dk = lax.conv_general_dilated(x_t, g_t, window_strides=(1,), padding=[(low, high)],
                                  lhs_dilation=(lhs_dilation,), rhs_dilation=(stride,),
                                  dimension_numbers=_CONV_DIMS)                # (in, taps, out)
    return dx, jnp.transpose(dk, (1, 0, 2))


# Why a transposed convolution's kernel gradient is a matrix product: written as
# a convolution (above) it correlates the input, dilated by the stride, with a
# gradient as long as the output, i.e. a kernel of 32-128 taps; XLA:CPU hands
# that to a generic loop nest, 20-60x slower than the same sums as one GEMM
# (DACNN's decoder: 67 ms -> 1.1 ms per step for its widest layer, issue 32).
# The product skips the dilation's zeros instead of multiplying by them; its
# sums run in another order than the convolution's, so the result differs from
# JAX's own gradient by float32 rounding (it is closer to the float64 value,
# tests/test_models.py), not bit for bit.
def _dilated_kernel_gradient(x, g, taps: int, low: int, dilation: int) -> jax.Array:
    """d/dkernel of a stride-1 correlation of x dilated by `dilation` and padded by `low` on the left.

    kernel tap j meets input sample m at output position t = low + dilation * m - j, so
    dk[j] = sum over (batch, m) of x[b, m] (outer) g[b, low + dilation * m - j]: the K strided
    slices of g (zero outside it) side by side, then one (in, B*M) @ (B*M, K*out) product.
    """
    b, length, cin = x.shape
    _, out_len, cout = g.shape
    span = dilation * (length - 1) + 1
    first = low + taps - 1                                   # of tap 0, in g padded by taps - 1 on the left
    right = max(0, first + span - (out_len + taps - 1))
    padded = jnp.pad(g, ((0, 0), (taps - 1, right), (0, 0)))
    columns = jnp.stack([padded[:, first - j: first - j + span: dilation] for j in range(taps)], axis=2)
    dk = lax.dot_general(x.reshape(b * length, cin), columns.reshape(b * length, taps * cout),
                         (((0,), (0,)), ((), ())))           # (in, taps * out)
    return jnp.transpose(dk.reshape(cin, taps, cout), (1, 0, 2))


_conv1d.defvjp(_conv1d_forward, _conv1d_backward)


def torch_uniform(fan_in: int) -> nn.initializers.Initializer:
    """Uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)), PyTorch's default for weights and biases."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, minval=-bound, maxval=bound)

    return init


def same_padding(kernel_size: int) -> int:
    """PyTorch-style 'same' padding for odd kernels: (k - 1) // 2 on each side."""
    return (kernel_size - 1) // 2


class Conv1d(nn.Module):
    """`torch.nn.Conv1d` with symmetric zero padding (default (k-1)//2)."""

    features: int
    kernel_size: int
    stride: int = 1
    padding: int | None = None
    use_bias: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        in_features = x.shape[-1]
        fan_in = in_features * self.kernel_size
        kernel = self.param("kernel", torch_uniform(fan_in),
                            (self.kernel_size, in_features, self.features))
        pad = same_padding(self.kernel_size) if self.padding is None else self.padding
        y = conv1d(x, kernel, stride=self.stride, padding=(pad, pad))
        if self.use_bias:
            y = y + self.param("bias", torch_uniform(fan_in), (self.features,))
        return y


def conv_transpose_output_length(length: int, kernel_size: int, stride: int,
                                 padding: int, output_padding: int) -> int:
    """PyTorch's ConvTranspose1d output length (dilation 1)."""
    return (length - 1) * stride - 2 * padding + kernel_size + output_padding


class ConvTranspose1d(nn.Module):
    """`torch.nn.ConvTranspose1d`: y[t*stride + j - padding] += x[t] @ w[j].

    Computed as a stride-1 correlation of the input dilated by `stride` with
    the flipped kernel, padded by k-1-padding on the left and
    k-1-padding+output_padding on the right; this is the exact adjoint of the
    strided convolution, so lengths and values equal PyTorch's.
    """

    features: int
    kernel_size: int
    stride: int = 1
    padding: int | None = None
    output_padding: int = 0
    use_bias: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        in_features = x.shape[-1]
        # PyTorch's weight is (in, out, k): its fan_in is size(1) * k = out * k.
        fan_in = self.features * self.kernel_size
        kernel = self.param("kernel", torch_uniform(fan_in),
                            (self.kernel_size, in_features, self.features))
        pad = same_padding(self.kernel_size) if self.padding is None else self.padding
        edge = self.kernel_size - 1 - pad
        y = conv1d(x, kernel[::-1], padding=(edge, edge + self.output_padding), lhs_dilation=self.stride)
        if self.use_bias:
            y = y + self.param("bias", torch_uniform(fan_in), (self.features,))
        return y


class Dense(nn.Module):
    """`torch.nn.Linear` (fan_in = in_features)."""

    features: int
    use_bias: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        in_features = x.shape[-1]
        kernel = self.param("kernel", torch_uniform(in_features), (in_features, self.features))
        y = x @ kernel
        if self.use_bias:
            y = y + self.param("bias", torch_uniform(in_features), (self.features,))
        return y


class BatchNorm(nn.Module):
    """`torch.nn.BatchNorm1d` over every axis but the last (channels).

    `momentum` uses Flax's convention (weight of the old running value), so
    0.9 here is PyTorch's momentum 0.1. In train mode the output is normalised
    with the biased batch variance and the running variance is updated with
    the unbiased one, as PyTorch does; running stats live in the `batch_stats`
    collection (buffers, not parameters) and are left untouched by `init`.
    """

    momentum: float = 0.9
    epsilon: float = 1e-5

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        channels = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (channels,))
        bias = self.param("bias", nn.initializers.zeros, (channels,))
        running_mean = self.variable("batch_stats", "mean", jnp.zeros, (channels,), jnp.float32)
        running_var = self.variable("batch_stats", "var", jnp.ones, (channels,), jnp.float32)
        if train:
            axes = tuple(range(x.ndim - 1))
            count = math.prod(x.shape[:-1])
            mean = jnp.mean(x, axis=axes)
            var = jnp.mean(jnp.square(x - mean), axis=axes)
            if not self.is_initializing():
                unbiased = var * (count / (count - 1)) if count > 1 else var
                m = self.momentum
                running_mean.value = m * running_mean.value + (1.0 - m) * mean
                running_var.value = m * running_var.value + (1.0 - m) * unbiased
        else:
            mean, var = running_mean.value, running_var.value
        return (x - mean) * lax.rsqrt(var + self.epsilon) * scale + bias


def leaky_relu(x: jax.Array) -> jax.Array:
    """Leaky ReLU with PyTorch's default slope 0.01."""
    return jax.nn.leaky_relu(x, negative_slope=0.01)


# Why max has its own derivative: JAX differentiates a max-reduction as
# g * (x == max(x)) / count(x == max(x)), an equality test between x and the
# maximum computed from it. XLA may duplicate x's cheap producer into several
# fusions (the forward max, the equality mask, the count) and round it
# differently in each, e.g. with and without a fused multiply-add, depending on
# the vector ISA it compiles for. A one-ulp difference then fails the equality
# everywhere in a window and its gradient is silently dropped: AGS-UNet's
# jitted gradient was off by 20 % on XLA:CPU with AVX2 code (jax 0.10.2; the
# un-jitted one was right; README, "Known issues"). Routing the gradient to the
# first arg-max instead never compares against a recomputed maximum: a
# differently rounded copy can at worst move the gradient between two entries
# within an ulp of each other, never lose it. The value is `jnp.max`'s, bit for
# bit; the gradient equals JAX's except at exact ties, where it goes to the
# first maximum, as PyTorch's MaxPool1d and max(dim) do (torch.amax splits it).
@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def max_reduce(x: jax.Array, axis: int) -> jax.Array:
    """`jnp.max(x, axis)` whose derivative is the tangent at the first maximum (see above)."""
    return jnp.max(x, axis=axis)


@max_reduce.defjvp
def _max_reduce_jvp(axis, primals, tangents):
    (x,), (tangent,) = primals, tangents
    if x.shape[axis] == 2:   # max-pooling by 2: one comparison instead of an arg-max reduction
        first, second = jnp.split(x, 2, axis=axis)
        chosen = jnp.squeeze(second > first, axis)
        t_first, t_second = jnp.split(tangent, 2, axis=axis)
        tangent_out = jnp.where(chosen, jnp.squeeze(t_second, axis), jnp.squeeze(t_first, axis))
    else:
        first_max = jnp.argmax(x, axis=axis, keepdims=True)
        at_max = lax.broadcasted_iota(first_max.dtype, x.shape, axis % x.ndim) == first_max
        tangent_out = jnp.sum(jnp.where(at_max, tangent, jnp.zeros_like(tangent)), axis=axis)
    return jnp.max(x, axis=axis), tangent_out


def max_pool2(x: jax.Array) -> jax.Array:
    """`MaxPool1d(2)` over time: (B, L, C) -> (B, L // 2, C), an odd last sample dropped."""
    b, length, c = x.shape
    half = length // 2
    return max_reduce(x[:, : 2 * half].reshape(b, half, 2, c), 2)


def upsample_linear2(x: jax.Array) -> jax.Array:
    """`Upsample(scale_factor=2, mode="linear", align_corners=False)` over time.

    Output sample i reads source position (i + 0.5) / 2 - 0.5, clamped to the
    signal, so out[2m] = x[m-1]/4 + 3x[m]/4 and out[2m+1] = 3x[m]/4 + x[m+1]/4
    with the edge samples repeated (out[0] = x[0], out[-1] = x[-1]).
    """
    padded = jnp.pad(x, ((0, 0), (1, 1), (0, 0)), mode="edge")
    # 3x/4 written as x - x/4: every product is then by a power of two, hence
    # exact, so whether XLA:CPU fuses a multiply and an add into one FMA (which
    # depends on how it fused the program: a step, or a step inside a scan)
    # cannot change any rounding, here or in the gradient. The value is
    # round(0.75 x) all the same.
    three_quarters = x - 0.25 * x
    even = 0.25 * padded[:, :-2] + three_quarters
    odd = three_quarters + 0.25 * padded[:, 2:]
    b, length, c = x.shape
    return jnp.stack([even, odd], axis=2).reshape(b, 2 * length, c)


def global_avg_pool(x: jax.Array) -> jax.Array:
    """Mean over time: (B, L, C) -> (B, C)."""
    return jnp.mean(x, axis=1)


def global_max_pool(x: jax.Array) -> jax.Array:
    """Max over time: (B, L, C) -> (B, C), differentiated as `max_reduce`."""
    return max_reduce(x, 1)


def check_input(x: jax.Array, multiple: int = 16) -> None:
    """Reject inputs the encoder-decoder cannot map back to their own length.

    Four halvings need a length divisible by 16; shapes are static, so this
    fails at trace time with one clear message instead of a shape error deep
    inside a skip connection.
    """
    if x.ndim != 3:
        raise ConfigError(f"expected input of shape (batch, length, channels), got {x.shape}")
    if x.shape[1] % multiple:
        raise ConfigError(f"window length must be divisible by {multiple}, got {x.shape[1]}")
