"""DANCE of the reference's final revision, and its component/ablation variants (models.md).

Every block is Conv -> ATNC -> BN; the decoder blocks but the last add an
attention after the BN (AREM in DANCE proper). The encoder halves the length
three times (after its first three blocks); its fourth block runs at L/8 and
feeds the first decoder block directly, and each later decoder block reads
Up(x) plus the encoder output of its length. No other activation anywhere.

The variants differ only in the decoder's attention slot and in whether the
ATNC is there at all, so they are options of one class:

    decoder_attention   "arem" (DANCE), "se", "cbam", "eca" or "identity"
    atnc                False: Conv -> BN in every block ("+ AREM")
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from ecg_jax.errors import ConfigError
from ecg_jax.models.blocks import CAC, ECA
from ecg_jax.models.layers import (
    BatchNorm,
    Conv1d,
    Dense,
    check_input,
    global_avg_pool,
    global_max_pool,
    max_pool2,
    max_reduce,
    same_padding,
    torch_uniform,
    upsample_linear2,
)

WIDTHS = (2, 16, 32, 64, 128)
KERNELS = (13, 7, 7, 7)
DECODER_ATTENTIONS = ("arem", "se", "cbam", "eca", "identity")

# ATNC (adaptive threshold noise canceller) is, operation for operation, DANCER's
# CAC: s = GAP(|x|), a = sigmoid(FC(ReLU(BN(FC(s))))), y = soft(x, s * a).
ATNC = CAC


class DepthwiseConv1d(nn.Module):
    """`torch.nn.Conv1d(C, C, k, groups=C, bias=False)`: one k-tap filter per channel, 'same' padding.

    Written as k shifted products rather than a grouped convolution: XLA:CPU
    has no fast kernel for a grouped convolution's gradient inside a loop body
    (a scanned epoch), while k element-wise multiply-adds are cheap anywhere.
    The kernel is stored (k, 1, C), the layout of a grouped convolution's
    (k, in / groups, out).
    """

    kernel_size: int = 7

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k, channels, length = self.kernel_size, x.shape[-1], x.shape[1]
        kernel = self.param("kernel", torch_uniform(k), (k, 1, channels))  # fan_in = (C / groups) * k
        pad = same_padding(k)
        padded = jnp.pad(x, ((0, 0), (pad, k - 1 - pad), (0, 0)))
        y = padded[:, 0:length] * kernel[0, 0]
        for j in range(1, k):
            y = y + padded[:, j:j + length] * kernel[j, 0]
        return y


class AREM(nn.Module):
    """Adaptive local enhancement: a per-channel, per-time-step gate computed from x itself.

    m = sigmoid(Conv1x1(2C->C)(ReLU(BN(DWConv_k(2C)(ReLU(BN(Conv1x1(C->2C, no bias)(x))))))))
    with a bias-free depthwise convolution; y = x * m. Parameters: 4C^2 + 23C (k = 7).
    """

    kernel_size: int = 7

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        channels = x.shape[-1]
        h = Conv1d(2 * channels, 1, use_bias=False, name="expand")(x)
        h = jax.nn.relu(BatchNorm(name="bn1")(h, train))
        h = DepthwiseConv1d(self.kernel_size, name="depthwise")(h)
        h = jax.nn.relu(BatchNorm(name="bn2")(h, train))
        m = jax.nn.sigmoid(Conv1d(channels, 1, name="project")(h))
        self.sow("intermediates", "gate", m)
        return x * m


class SE(nn.Module):
    """Squeeze-and-excitation, bias-free: g = sigmoid(FC(C/r->C)(ReLU(FC(C->C/r)(GAP(x))))), y = x * g.

    One gate per window and channel. Parameters: 2C^2 / r.
    """

    reduction: int = 2

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        del train  # no BatchNorm
        channels = x.shape[-1]
        h = jax.nn.relu(Dense(channels // self.reduction, use_bias=False, name="fc1")(global_avg_pool(x)))
        g = jax.nn.sigmoid(Dense(channels, use_bias=False, name="fc2")(h))
        self.sow("intermediates", "gate", g)
        return x * g[:, None, :]


class CBAM(nn.Module):
    """Channel then spatial attention, as the reference's CBAM computes it.

    Channel: f = sigmoid . FC(C/r->C) . ReLU . FC(C->C/r), bias-free and ONE
    module for both poolings, w = f(GAP(x)) + f(GMP(x)). Each term is already
    a sigmoid and the sum is not squashed again, so w lies in (0, 2) (the
    reference does exactly this). x1 = x * w.
    Spatial: v = sigmoid(Conv(2->1, k, no bias)(concat(mean_c(x1), max_c(x1)))),
    y = x1 * v. Parameters: 2C^2 / r + 2k.
    """

    reduction: int = 2
    kernel_size: int = 7

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        del train  # no BatchNorm
        channels = x.shape[-1]
        fc1 = Dense(channels // self.reduction, use_bias=False, name="fc1")
        fc2 = Dense(channels, use_bias=False, name="fc2")

        def excite(z):
            return jax.nn.sigmoid(fc2(jax.nn.relu(fc1(z))))

        w = excite(global_avg_pool(x)) + excite(global_max_pool(x))
        x = x * w[:, None, :]
        pooled = jnp.concatenate([jnp.mean(x, axis=-1, keepdims=True),
                                  max_reduce(x, -1)[..., None]], axis=-1)
        v = jax.nn.sigmoid(Conv1d(1, self.kernel_size, use_bias=False, name="spatial_conv")(pooled))
        self.sow("intermediates", "channel_gate", w)
        self.sow("intermediates", "spatial_gate", v)
        return x * v


def _decoder_attention(kind: str, name: str) -> nn.Module | None:
    if kind == "arem":
        return AREM(name=name)
    if kind == "se":
        return SE(reduction=2, name=name)
    if kind == "cbam":
        return CBAM(reduction=2, kernel_size=7, name=name)
    if kind == "eca":
        return ECA(kernel_size=7, name=name)
    return None


class DANCEFinal(nn.Module):
    """DANCE (final revision): Conv -> ATNC -> BN blocks, AREM after each decoder block but the last.

    Encoder i = 0..3: x = BN(ATNC(Conv(c[i]->c[i+1], k[i])(x))), max pool after
    i = 0, 1, 2 (keeping e_0..e_2). Decoder j = 0..3 (kernels 7, 7, 7, 13,
    widths 64, 32, 16, 2): input x for j = 0, Up(x) + e_{3-j} after;
    x = BN(ATNC(Conv(x))), then the attention slot for j < 3.
    Parameters: arem 232,198; se 213,494; cbam 213,536; eca 208,139;
    identity 208,118; arem without ATNC 176,502.
    """

    decoder_attention: str = "arem"
    atnc: bool = True

    def __post_init__(self):
        # Checked when the module is built, so a bad --config.model_kwargs fails before any data is read.
        if self.decoder_attention not in DECODER_ATTENTIONS:
            raise ConfigError(f"decoder_attention must be one of {', '.join(DECODER_ATTENTIONS)}, "
                              f"got {self.decoder_attention!r}")
        if not isinstance(self.atnc, bool):
            raise ConfigError(f"atnc must be true or false, got {self.atnc!r}")
        super().__post_init__()

    def _block(self, x: jax.Array, features: int, kernel_size: int, prefix: str, train: bool) -> jax.Array:
        x = Conv1d(features, kernel_size, name=f"{prefix}_conv")(x)
        if self.atnc:
            x = ATNC(name=f"{prefix}_atnc")(x, train)
        return BatchNorm(name=f"{prefix}_bn")(x, train)

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        check_input(x, multiple=8)  # three poolings
        skips = []
        for i, k in enumerate(KERNELS):
            x = self._block(x, WIDTHS[i + 1], k, f"enc{i}", train)
            if i < 3:
                skips.append(x)
                x = max_pool2(x)
        for j in range(4):
            level = 3 - j  # output width WIDTHS[level], kernel KERNELS[level]
            if j > 0:
                x = upsample_linear2(x) + skips[level]
            x = self._block(x, WIDTHS[level], KERNELS[level], f"dec{j}", train)
            if j < 3:
                attention = _decoder_attention(self.decoder_attention, f"dec{j}_{self.decoder_attention}")
                if attention is not None:
                    x = attention(x, train)
        return x
