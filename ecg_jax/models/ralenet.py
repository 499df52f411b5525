"""RALENet: the final revision's transformer U-Net (models.md, "Final revision networks").

A convolutional stem, then a U-Net of transformer stages on (batch, length,
channels) tokens. Widths 8, 16, 32, 64, 128 with 4-dimensional heads (2, 4, 8,
16, 32 heads); each stage is two pre-norm transformer blocks and a resampling:

  block(x):  x = x + DropPath(Attention(LN(x + PE)))
             x = x + DropPath(MLP(LN(x)))
  MLP:       FC(C->4C), GELU, partial convolution (a bias-free 3-tap Conv on the
             first hidden channel only; the others pass unchanged), GELU, FC(4C->C)
  encoder:   PatchMerging, (L, C) -> (L/2, 2C): neighbours (2m, 2m+1) concatenated
             on channels, LN(2C), FC(2C->2C, no bias)
  decoder:   PatchSeparate, (L, C) -> (2L, C/2): the first C/2 channels become
             positions 0..L-1 and the last C/2 positions L..2L-1 (the reference's
             "b l (c1 c2) -> b (c1 l) c2", not an interleave), LN(C/2), FC(C/2->C/2, no bias)

PE is the sinusoidal table of "Attention Is All You Need", added to the
attention branch's input only. Attention adds a learned relative position bias,
one table of 63 x heads per encoder level (shared with the decoder stage of the
same length), to the first 32 x 32 query/key positions only; every other
query/key pair gets no bias. The reference pads that 32 x 32 block with zeros
to a fixed 256-sample window (and fails beyond); the bias is the same for
every length up to 256, and here the same zero padding extends it to any
length divisible by 16, as the sinusoids extend past the reference's 2048
positions, so longer windows (e.g. 512) run with the same parameters.

Whole network:
  s = BN(LReLU_0.2(Conv(2->8, 3)(x)))
  t1..t4: encoder stages (bias tables 0..3), each keeping its input as a skip
  x = mid(x) + x                      (128 channels, L/16, no bias)
  x = dec4(x) + t4_in; dec3 (bias 3) + t3_in; dec2 (bias 2) + t2_in; dec1 (bias 1)
  y = Conv(8->2, 3)(x + s)
1,088,690 parameters.

DropPath (stochastic depth) is an option, `drop_path_rate`, 0 in the
reference (its RALENet passes none, so its DropPath is the identity). With a
positive rate, in train mode each sample's residual branch is dropped with
that probability and kept branches are scaled by 1 / (1 - rate); the draw
comes from the `dropout` rng stream (the training engine passes one). In eval
mode it is the identity.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ecg_jax.errors import ConfigError
from ecg_jax.models.layers import BatchNorm, Conv1d, Dense, check_input

WIDTHS = (8, 16, 32, 64, 128)
HEADS = (2, 4, 8, 16, 32)
DEPTH = 2            # transformer blocks per stage
MLP_RATIO = 4
BIAS_SPAN = 32       # the relative position bias covers the first 32 query/key positions
STEM_SLOPE = 0.2


def sinusoid_table(length: int, dim: int) -> np.ndarray:
    """(length, dim) sinusoidal position encoding: sin on even channels, cos on odd ones.

    Channel pair (2i, 2i+1) uses the frequency 10000^(-2i/dim). Computed in
    float64 and rounded once to the input's dtype; the reference computes the
    same table with float32 arithmetic, within a float32 rounding of this one.
    """
    freq = np.exp(np.arange(0, dim, 2, dtype=np.float64) * -(math.log(10000.0) / dim))
    angle = np.arange(length, dtype=np.float64)[:, None] * freq[None, :]
    table = np.zeros((length, dim))
    table[:, 0::2] = np.sin(angle)
    table[:, 1::2] = np.cos(angle)
    return table


def relative_bias(table: jax.Array, length: int) -> jax.Array:
    """(heads, length, length) attention bias from a (2 * 32 - 1, heads) table.

    bias[h, i, j] = table[i - j + 31, h] for i, j < 32, else 0.
    """
    span = min(length, BIAS_SPAN)
    offsets = np.arange(span)[:, None] - np.arange(span)[None, :] + BIAS_SPAN - 1
    block = jnp.transpose(table[offsets], (2, 0, 1))
    pad = length - span
    return jnp.pad(block, ((0, 0), (0, pad), (0, pad)))


def parse_drop_path_rate(value) -> float:
    """The drop rate as a float in [0, 1] (the CLI may hand over a string)."""
    try:
        rate = float(value)
    except (TypeError, ValueError):
        rate = float("nan")
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(f"model 'ralenet' option 'drop_path_rate' must be a number from 0 to 1 "
                          f"(0 = no stochastic depth, the reference's default), got {value!r}")
    return rate


class LayerNorm(nn.Module):
    """`torch.nn.LayerNorm` over the last axis: eps 1e-5, biased variance of the centred input."""

    epsilon: float = 1e-5

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        channels = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (channels,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (channels,), jnp.float32)
        centred = x - jnp.mean(x, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(centred), axis=-1, keepdims=True)
        return centred * jax.lax.rsqrt(var + self.epsilon) * scale + bias


def drop_path(x: jax.Array, rate: float, key: jax.Array) -> jax.Array:
    """Stochastic depth: per sample (leading axis), the whole branch is zeroed with probability `rate`.

    Sample b is kept when uniform(key, (B, 1, ...))[b] < 1 - rate; kept samples
    are scaled by 1 / (1 - rate) so the expectation is unchanged (a rate of 1
    drops everything, unscaled), as the reference's DropPath does.
    """
    keep = 1.0 - rate
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    mask = jax.random.bernoulli(key, keep, shape).astype(x.dtype)
    if keep > 0.0:
        mask = mask / keep
    return x * mask


class DropPath(nn.Module):
    """`drop_path` with the `dropout` rng in train mode; the identity in eval mode and at rate 0 (no rng needed)."""

    rate: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        if not train or self.rate == 0.0:
            return x
        return drop_path(x, self.rate, self.make_rng("dropout"))


class Attention(nn.Module):
    """Multi-head self-attention, q.k^T / sqrt(head_dim) + bias, softmax over keys, then FC(C->C)."""

    heads: int

    @nn.compact
    def __call__(self, x: jax.Array, bias: jax.Array | None) -> jax.Array:
        batch, length, channels = x.shape
        head_dim = channels // self.heads
        qkv = Dense(3 * channels, name="qkv")(x).reshape(batch, length, 3, self.heads, head_dim)
        q, k, v = (qkv[:, :, i] for i in range(3))                     # (B, N, heads, d)
        scores = jnp.einsum("bnhd,bmhd->bhnm", q, k) * (head_dim ** -0.5)
        if bias is not None:
            scores = scores + bias[None]
        weights = jax.nn.softmax(scores, axis=-1)
        out = jnp.einsum("bhnm,bmhd->bnhd", weights, v).reshape(batch, length, channels)
        return Dense(channels, name="proj")(out)


class Mlp(nn.Module):
    """FC(C->4C), GELU, partial convolution on hidden channel 0, GELU, FC(4C->C)."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        channels = x.shape[-1]
        h = jax.nn.gelu(Dense(MLP_RATIO * channels, name="fc1")(x), approximate=False)
        # The reference's PartialConv_1d(hidden, n_div=hidden) convolves hidden // hidden = 1 channel.
        first = Conv1d(1, 3, use_bias=False, name="partial_conv")(h[..., :1])
        h = jax.nn.gelu(jnp.concatenate([first, h[..., 1:]], axis=-1), approximate=False)
        return Dense(channels, name="fc2")(h)


class TransformerBlock(nn.Module):
    heads: int
    drop_path_rate: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array, bias: jax.Array | None, train: bool) -> jax.Array:
        length, channels = x.shape[1], x.shape[2]
        position = jnp.asarray(sinusoid_table(length, channels), x.dtype)
        drop = DropPath(self.drop_path_rate, name="drop_path")
        h = Attention(self.heads, name="attn")(LayerNorm(name="norm1")(x + position), bias)
        x = x + drop(h, train)
        return x + drop(Mlp(name="mlp")(LayerNorm(name="norm2")(x)), train)


class PatchMerging(nn.Module):
    """(B, L, C) -> (B, L/2, 2C): [x[2m], x[2m+1]] on channels, LN(2C), FC(2C->2C, no bias)."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        batch, length, channels = x.shape
        if length % 2:
            x = jnp.pad(x, ((0, 0), (0, 1), (0, 0)))
            length += 1
        x = x.reshape(batch, length // 2, 2 * channels)
        return Dense(2 * channels, use_bias=False, name="reduction")(LayerNorm(name="norm")(x))


class PatchSeparate(nn.Module):
    """(B, L, C) -> (B, 2L, C/2): channels [:C/2] at positions 0..L-1, [C/2:] at L..2L-1; LN, FC(no bias)."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        batch, length, channels = x.shape
        half = channels // 2
        x = jnp.transpose(x.reshape(batch, length, 2, half), (0, 2, 1, 3)).reshape(batch, 2 * length, half)
        return Dense(half, use_bias=False, name="reduction")(LayerNorm(name="norm")(x))


class Stage(nn.Module):
    """DEPTH transformer blocks, then PatchMerging ("merge"), PatchSeparate ("separate") or nothing."""

    heads: int
    resample: str | None = None
    drop_path_rate: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array, bias: jax.Array | None, train: bool) -> jax.Array:
        for i in range(DEPTH):
            x = TransformerBlock(self.heads, self.drop_path_rate, name=f"block{i}")(x, bias, train)
        if self.resample == "merge":
            return PatchMerging(name="merge")(x)
        if self.resample == "separate":
            return PatchSeparate(name="separate")(x)
        return x


class RALENet(nn.Module):
    """RALENet(double_ch=True, high_level_enhence=True) of the reference; see the module docstring."""

    drop_path_rate: float = 0.0

    def __post_init__(self):
        parse_drop_path_rate(self.drop_path_rate)
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        check_input(x)
        rate = parse_drop_path_rate(self.drop_path_rate)
        length = x.shape[1]
        stem = Conv1d(WIDTHS[0], 3, name="stem_conv")(x)
        # BatchNorm creates its scale and bias in JAX's default float type (float64 when x64 is
        # on); the cast keeps the network in the input's dtype whatever that setting is.
        stem = BatchNorm(name="stem_bn")(jax.nn.leaky_relu(stem, STEM_SLOPE), train).astype(x.dtype)
        # One bias table per encoder level (its head count), at that level's length.
        biases = [relative_bias(self.param(f"rel_bias{i}", nn.initializers.zeros,
                                           (2 * BIAS_SPAN - 1, HEADS[i]), jnp.float32).astype(x.dtype),
                                length >> i)
                  for i in range(4)]

        x, skips = stem, []
        for i in range(4):
            skips.append(x)
            x = Stage(HEADS[i], "merge", rate, name=f"enc{i + 1}")(x, biases[i], train)
        x = Stage(HEADS[4], None, rate, name="mid")(x, None, train) + x
        x = Stage(HEADS[4], "separate", rate, name="dec4")(x, None, train) + skips[3]
        for i in (3, 2):   # dec3 and dec2 use the bias tables of levels 3 and 2
            x = Stage(HEADS[i], "separate", rate, name=f"dec{i}")(x, biases[i], train) + skips[i - 1]
        x = Stage(HEADS[1], "separate", rate, name="dec1")(x, biases[1], train)
        return Conv1d(2, 3, name="out_conv")(x + stem)
