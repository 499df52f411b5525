"""AGS-UNet: shrinkage encoder, transposed-conv decoder with attention-gated skips (models.md)."""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from ecg_jax.models.blocks import AttentionGate, Shrinkage
from ecg_jax.models.layers import (
    BatchNorm,
    Conv1d,
    ConvTranspose1d,
    check_input,
    leaky_relu,
    max_pool2,
    upsample_linear2,
)

WIDTHS = (2, 16, 32, 64, 128)


class AGSUNet(nn.Module):
    """Encoder i: x = Pool(LReLU(Shrinkage(Conv(c[i]->c[i+1], k[i])(x)))), s_i = x.

    Decoder j = 0..2: x = LReLU(Up(ConvT(c[4-j]->c[3-j], 5, same)(x)));
    a = AttentionGate(g=x, skip=s_{2-j}); x = ReLU(BN(Conv1x1(2F->F)(concat(a, x)))).
    Last level: LReLU(Up(ConvT(16->2, 11, same)(x))). No bottleneck convolution.
    169,923 parameters.
    """

    encoder_kernels: ClassVar[tuple[int, ...]] = (11, 5, 5, 5)
    decoder_kernels: ClassVar[tuple[int, ...]] = (5, 5, 5)
    output_kernel: ClassVar[int] = 11

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        check_input(x)
        skips = []
        for i, k in enumerate(self.encoder_kernels):
            h = Conv1d(WIDTHS[i + 1], k, name=f"enc{i}_conv")(x)
            x = max_pool2(leaky_relu(Shrinkage(name=f"enc{i}_shrink")(h, train)))
            skips.append(x)
        for j, k in enumerate(self.decoder_kernels):
            level = len(self.decoder_kernels) - 1 - j
            features = WIDTHS[level + 1]
            x = leaky_relu(upsample_linear2(ConvTranspose1d(features, k, name=f"dec{j}_convt")(x)))
            attended = AttentionGate(name=f"dec{j}_gate")(x, skips[level], train)
            x = Conv1d(features, 1, name=f"dec{j}_fuse")(jnp.concatenate([attended, x], axis=-1))
            x = jax.nn.relu(BatchNorm(name=f"dec{j}_bn")(x, train))
        x = ConvTranspose1d(WIDTHS[0], self.output_kernel, name="out_convt")(x)
        return leaky_relu(upsample_linear2(x))
