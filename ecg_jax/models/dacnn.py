"""DACNN: encoder-decoders with APReLU, BatchNorm and dual attention (models.md).

The paper's `DACNN` is strided (Conv stride 2 down, ConvT stride 2 up); the final
revision's `DACNNFinal` keeps the length with stride-1 convolutions and
max-pools / upsamples between blocks.
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax

from ecg_jax.models.blocks import DAM, APReLU
from ecg_jax.models.layers import (
    BatchNorm,
    Conv1d,
    ConvTranspose1d,
    check_input,
    max_pool2,
    same_padding,
    upsample_linear2,
)

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
        for j, (k, width) in enumerate(zip(self.decoder_kernels, self.decoder_widths, strict=True)):
            if j > 0:
                x = x + skips[last - j]
            x = ConvTranspose1d(width, k, stride=2, padding=same_padding(k), output_padding=1,
                                name=f"dec{j}_convt")(x)
            x = APReLU(name=f"dec{j}_aprelu")(x, train)
            x = BatchNorm(name=f"dec{j}_bn")(x, train)
            if j < last:
                x = DAM(name=f"dec{j}_dam")(x, train)
        return x


class DACNNFinal(nn.Module):
    """The final revision's DACNN (reference models/DACNN.py at ab22e14; models.md,
    "DACNN (final): its layout"): stride-1 "same" convolutions, max-pooling
    down, linear upsampling up. 258,457 parameters.

    Encoder block i: BN(APReLU(Conv(c[i]->c[i+1], k_i))), kernels (17, 17, 3, 3).
    Blocks 0-2 are kept as skips and max-pooled; block 3 runs at L/8 and feeds
    decoder block 0 directly (no pooling or upsampling between them).
    Decoder block j: BN(APReLU(Conv(c[4-j]->c[3-j], k_j))), kernels (3, 3, 17, 17),
    then DAM except after the last block (16 -> 2); before blocks 1-3:
    x = Up(x) + skip_{3-j}. The last BatchNorm's output is the network's output.

    Same widths, kernels and blocks as a strided/transposed layout, hence the
    same parameter count: a count does not tell the two apart, the layout above
    (from the reference source, read by a maintainer) does.
    """

    encoder_kernels: ClassVar[tuple[int, ...]] = (17, 17, 3, 3)
    decoder_kernels: ClassVar[tuple[int, ...]] = (3, 3, 17, 17)
    decoder_widths: ClassVar[tuple[int, ...]] = (64, 32, 16, 2)

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        check_input(x, multiple=8)   # three poolings
        skips = []
        for i, k in enumerate(self.encoder_kernels):
            x = Conv1d(WIDTHS[i + 1], k, name=f"enc{i}_conv")(x)
            x = BatchNorm(name=f"enc{i}_bn")(APReLU(name=f"enc{i}_aprelu")(x, train), train)
            if i < len(self.encoder_kernels) - 1:
                skips.append(x)
                x = max_pool2(x)
        last = len(self.decoder_kernels) - 1
        for j, (k, width) in enumerate(zip(self.decoder_kernels, self.decoder_widths, strict=True)):
            if j > 0:
                x = upsample_linear2(x) + skips[last - j]
            x = Conv1d(width, k, name=f"dec{j}_conv")(x)
            x = BatchNorm(name=f"dec{j}_bn")(APReLU(name=f"dec{j}_aprelu")(x, train), train)
            if j < last:
                x = DAM(name=f"dec{j}_dam")(x, train)
        return x
