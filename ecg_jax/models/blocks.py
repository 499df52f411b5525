"""Attention and shrinkage blocks shared by the networks (models.md, "Shared building blocks").

Every block maps (B, L, C) to (B, L, C), infers C from its input and takes
`train` (for its BatchNorms, if any). Gates are recorded with
`sow("intermediates", "gate", ...)`, a no-op unless the caller makes the
`intermediates` collection mutable; tests use it to inspect attention weights.
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from ecg_jax.models.layers import (
    BatchNorm,
    Conv1d,
    Dense,
    global_avg_pool,
    global_max_pool,
    leaky_relu,
    max_reduce,
    torch_uniform,
)

Activation = Callable[[jax.Array], jax.Array]


def soft_threshold(x: jax.Array, threshold: jax.Array) -> jax.Array:
    """sign(x) * relu(|x| - threshold): zero inside the threshold, shrunk towards 0 outside."""
    return jnp.sign(x) * jax.nn.relu(jnp.abs(x) - threshold)


class ChannelShrink(nn.Module):
    """CIADNet's ChannelShrink (and, with ReLU, DANCER's CAC).

    s = GAP(|x|), a = sigmoid(FC(act(BN(FC(s))))), y = soft(x, s * a): one
    learned threshold per window and channel, a fraction a of the channel's
    mean magnitude. `act` is LReLU here. Parameters: 2C^2 + 4C.
    """

    activation: Activation = leaky_relu

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        channels = x.shape[-1]
        s = global_avg_pool(jnp.abs(x))
        h = Dense(channels, name="fc1")(s)
        h = self.activation(BatchNorm(name="bn")(h, train))
        a = jax.nn.sigmoid(Dense(channels, name="fc2")(h))
        self.sow("intermediates", "gate", a)
        return soft_threshold(x, (s * a)[:, None, :])


class CAC(ChannelShrink):
    """DANCER's channel adaptive compression: ChannelShrink with ReLU."""

    activation: Activation = jax.nn.relu


def _abs_conv_gate(module: nn.Module, x: jax.Array, hidden: int, out: int, kernel_size: int,
                   act: Callable, train: bool) -> jax.Array:
    """x * sigmoid(Conv(hidden->out)(act(BN(Conv(C->hidden)(|x|))))), bias-free convolutions.

    The gate shared by CSE (out = C: per channel and time) and SpatialShrink
    (out = 1: per time step). Called from the block's compact __call__, so the
    submodules (conv1, bn, conv2) belong to that block.
    """
    h = Conv1d(hidden, kernel_size, use_bias=False, name="conv1")(jnp.abs(x))
    h = act(BatchNorm(name="bn")(h, train))
    a = jax.nn.sigmoid(Conv1d(out, kernel_size, use_bias=False, name="conv2")(h))
    module.sow("intermediates", "gate", a)
    return x * a


class CSE(nn.Module):
    """Channel-spatial excitation (DANCER): a per-channel, per-time-step gate.

    a = sigmoid(Conv(C/4->C, 7)(ReLU(BN(Conv(C->C/4, 7)(|x|))))), y = x * a;
    convolutions without bias. Parameters: 3.5C^2 + C/2.
    """

    reduction: int = 4
    kernel_size: int = 7

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        channels = x.shape[-1]
        return _abs_conv_gate(self, x, channels // self.reduction, channels, self.kernel_size,
                              jax.nn.relu, train)


class DANCE(nn.Module):
    """DANCER's encoder block: CSE(CAC(x))."""

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        x = CAC(name="cac")(x, train)
        return CSE(name="cse")(x, train)


class SpatialShrink(nn.Module):
    """CIADNet's spatial gate, one weight per time step shared by all channels.

    a = sigmoid(Conv(C/2->1, 7)(LReLU(BN(Conv(C->C/2, 7)(|x|))))), y = x * a;
    convolutions without bias. Parameters for C=16: 968.
    """

    reduction: int = 2
    kernel_size: int = 7

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        channels = x.shape[-1]
        return _abs_conv_gate(self, x, channels // self.reduction, 1, self.kernel_size, leaky_relu, train)


class Shrinkage(nn.Module):
    """AGS-UNet's shrinkage: like ChannelShrink, but m = GAP(x) of the *signed* input.

    a = sigmoid(FC(ReLU(BN(FC(m))))), y = soft(x, m * a). A negative mean gives
    a negative threshold (which widens rather than shrinks); the reference does
    exactly this, so it is kept.
    """

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        channels = x.shape[-1]
        m = global_avg_pool(x)
        h = Dense(channels, name="fc1")(m)
        h = jax.nn.relu(BatchNorm(name="bn")(h, train))
        a = jax.nn.sigmoid(Dense(channels, name="fc2")(h))
        self.sow("intermediates", "gate", a)
        return soft_threshold(x, (m * a)[:, None, :])


class AttentionGate(nn.Module):
    """Additive attention gate on a skip connection (AGS-UNet).

    g1 = BN(Conv1x1(F->F/2)(g)), x1 = BN(Conv1x1(F->F/2)(skip)),
    p = sigmoid(BN(Conv1x1(F/2->1)(relu(g1 + x1)))), output skip * p.
    """

    @nn.compact
    def __call__(self, gate: jax.Array, skip: jax.Array, train: bool) -> jax.Array:
        inner = skip.shape[-1] // 2
        g1 = BatchNorm(name="gate_bn")(Conv1d(inner, 1, name="gate_conv")(gate), train)
        x1 = BatchNorm(name="skip_bn")(Conv1d(inner, 1, name="skip_conv")(skip), train)
        h = jax.nn.relu(g1 + x1)
        p = jax.nn.sigmoid(BatchNorm(name="psi_bn")(Conv1d(1, 1, name="psi_conv")(h), train))
        self.sow("intermediates", "gate", p)
        return skip * p


class ECA(nn.Module):
    """Efficient channel attention (ACDAE): a 3-tap convolution across channels.

    z = GAP(x) (one value per channel); g = sigmoid(conv3(z)) where the
    convolution (no bias, zero padding 1) slides along the channel axis, so
    each channel's gate depends on itself and its two neighbours only;
    y = x * g (the gate is constant over time). 3 parameters.
    """

    kernel_size: int = 3

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        del train  # no BatchNorm; the argument keeps every block's signature alike
        k = self.kernel_size
        taps = self.param("kernel", torch_uniform(k), (k,))  # PyTorch Conv1d(1, 1, k): fan_in k
        z = global_avg_pool(x)
        pad = (k - 1) // 2
        padded = jnp.pad(z, ((0, 0), (pad, k - 1 - pad)))
        channels = z.shape[-1]
        mixed = sum(taps[j] * padded[:, j:j + channels] for j in range(k))
        g = jax.nn.sigmoid(mixed)
        self.sow("intermediates", "gate", g)
        return x * g[:, None, :]


class APReLU(nn.Module):
    """Adaptively parametric ReLU (DACNN): learned slopes for the negative part.

    p = max(x, 0), n = min(x, 0), z = concat(GAP(p), GAP(n)),
    a = sigmoid(BN(FC(2C->C)(ReLU(BN(FC(2C->2C)(z)))))), y = p + a * n.
    """

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        channels = x.shape[-1]
        pos = jax.nn.relu(x)
        neg = jnp.minimum(x, 0.0)
        z = jnp.concatenate([global_avg_pool(pos), global_avg_pool(neg)], axis=-1)
        h = jax.nn.relu(BatchNorm(name="bn1")(Dense(2 * channels, name="fc1")(z), train))
        a = jax.nn.sigmoid(BatchNorm(name="bn2")(Dense(channels, name="fc2")(h), train))
        self.sow("intermediates", "gate", a)
        return pos + a[:, None, :] * neg


class ChannelMLP(nn.Module):
    """DAM's f = sigmoid . BN . FC(C->C) . ReLU . BN . FC(C->C) on pooled features (B, C)."""

    @nn.compact
    def __call__(self, z: jax.Array, train: bool) -> jax.Array:
        channels = z.shape[-1]
        h = jax.nn.relu(BatchNorm(name="bn1")(Dense(channels, name="fc1")(z), train))
        return jax.nn.sigmoid(BatchNorm(name="bn2")(Dense(channels, name="fc2")(h), train))


class DAM(nn.Module):
    """Dual attention module (DACNN): channel weights, then spatial weights.

    w = sigmoid(f(GAP(x)) + f(GMP(x))) with ONE `ChannelMLP` applied to both
    poolings (shared weights; in train mode its BatchNorms see, and update
    their running stats from, the average-pool batch first, then the max-pool
    batch, as two calls of one PyTorch module do);
    v = sigmoid(Conv1x1(2->1)(concat(mean_c(x), max_c(x)))); y = v * (w * x).
    """

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        channel_mlp = ChannelMLP(name="channel_mlp")
        w = jax.nn.sigmoid(channel_mlp(global_avg_pool(x), train)
                           + channel_mlp(global_max_pool(x), train))
        pooled = jnp.concatenate([jnp.mean(x, axis=-1, keepdims=True),
                                  max_reduce(x, -1)[..., None]], axis=-1)
        v = jax.nn.sigmoid(Conv1d(1, 1, name="spatial_conv")(pooled))
        self.sow("intermediates", "channel_gate", w)
        self.sow("intermediates", "spatial_gate", v)
        return v * (w[:, None, :] * x)

