"""U-Net and its two one-hook variants, DANCER and ACDAE (models.md).

DANCER replaces each encoder level's LReLU with a DANCE block; ACDAE inserts
an ECA after each upsampling. Both are otherwise the U-Net, so they are
expressed as subclasses that set one hook (a block class) instead of copies
of the whole network.
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax

from ecg_jax.models.blocks import DANCE, ECA
from ecg_jax.models.layers import Conv1d, check_input, leaky_relu, max_pool2, upsample_linear2

WIDTHS = (2, 16, 32, 64, 128)


class UNet(nn.Module):
    """Four max-pool levels, a 3-tap bottleneck, linear upsampling with additive skips.

    Encoder i: e_i = LReLU(Conv(c[i]->c[i+1], k[i])(x)), x = Pool(e_i).
    Decoder j: x = Conv(c[4-j]->c[3-j], k[3-j])(Up(x) + e_{3-j}), LReLU but at the end.
    200,994 parameters; 211,490 with kernels (17, 17, 7, 7).
    """

    # One kernel per level, encoder and the decoder conv of the same level.
    # An option: the final revision of the reference uses (17, 17, 7, 7).
    kernels: tuple[int, ...] = (13, 7, 7, 7)
    # Hooks for the variants: a block class (called as Block(name=...)(x, train)).
    encoder_block: ClassVar[type[nn.Module] | None] = None  # replaces the encoder LReLU
    upsample_block: ClassVar[type[nn.Module] | None] = None  # applied right after Up

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        check_input(x)
        if len(self.kernels) != 4 or any(int(k) < 1 for k in self.kernels):
            raise ValueError(f"kernels must be 4 positive sizes (one per level), got {self.kernels}")
        skips = []
        for i, k in enumerate(self.kernels):
            h = Conv1d(WIDTHS[i + 1], k, name=f"enc{i}_conv")(x)
            if self.encoder_block is None:
                h = leaky_relu(h)
            else:
                h = self.encoder_block(name=f"enc{i}_block")(h, train)
            skips.append(h)
            x = max_pool2(h)
        x = leaky_relu(Conv1d(WIDTHS[-1], 3, name="bottleneck")(x))
        for j in range(len(self.kernels)):
            level = len(self.kernels) - 1 - j
            x = upsample_linear2(x)
            if self.upsample_block is not None:
                x = self.upsample_block(name=f"dec{j}_block")(x, train)
            x = Conv1d(WIDTHS[level], self.kernels[level], name=f"dec{j}_conv")(x + skips[level])
            if level > 0:
                x = leaky_relu(x)
        return x


class DANCER(UNet):
    """U-Net with DANCE (CSE after CAC) in place of each encoder LReLU. 321,754 parameters."""

    encoder_block: ClassVar[type[nn.Module] | None] = DANCE


class ACDAE(UNet):
    """U-Net with an ECA after each upsampling, before the skip is added. 201,006 parameters."""

    upsample_block: ClassVar[type[nn.Module] | None] = ECA
