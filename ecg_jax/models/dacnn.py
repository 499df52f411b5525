"""DACNN: strided encoder-decoder with APReLU, BatchNorm and dual attention (models.md)."""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax

from ecg_jax.models.blocks import DAM, APReLU
from ecg_jax.models.layers import (BatchNorm, Conv1d, ConvTranspose1d, check_input,
                                   same_padding)

WIDTHS = (2, 16, 32, 64, 128)


class DACNN(nn.Module):
    """Encoder i: d_i = BN(APReLU(Conv(c[i]->c[i+1], k[i], stride 2)(x))).

    Decoder j: x = BN(APReLU(ConvT(in->out, k, stride 2, output_padding 1)(x))),
    exactly doubling the length, then DAM except at the last level; each level
    after the first adds the encoder output of matching length to its input.
    The output therefore ends with APReLU and BN, as in the reference.
    329,881 parameters.
    """

    encoder_kernels: ClassVar[tuple[int, ...]] = (13, 7, 7, 7)
    decoder_kernels: ClassVar[tuple[int, ...]] = (7, 7, 7, 13)
    decoder_widths: ClassVar[tuple[int, ...]] = (64, 32, 16, 2)

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        check_input(x)
        skips = []
        for i, k in enumerate(self.encoder_kernels):
            x = Conv1d(WIDTHS[i + 1], k, stride=2, name=f"enc{i}_conv")(x)
            x = APReLU(name=f"enc{i}_aprelu")(x, train)
            x = BatchNorm(name=f"enc{i}_bn")(x, train)
            skips.append(x)
        last = len(self.decoder_kernels) - 1
        for j, (k, width) in enumerate(zip(self.decoder_kernels, self.decoder_widths)):
            if j > 0:
                x = x + skips[last - j]
            x = ConvTranspose1d(width, k, stride=2, padding=same_padding(k), output_padding=1,
                                name=f"dec{j}_convt")(x)
            x = APReLU(name=f"dec{j}_aprelu")(x, train)
            x = BatchNorm(name=f"dec{j}_bn")(x, train)
            if j < last:
                x = DAM(name=f"dec{j}_dam")(x, train)
        return x
