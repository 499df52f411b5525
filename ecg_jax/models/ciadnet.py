"""CIADNet and its ablation variants (models.md).

The two switches turn the channel (ChannelShrink) and spatial (SpatialShrink)
attention of every encoder level on or off; with both off the network is the
ablation baseline (a U-Net with [11, 5, 5, 5] kernels and a transposed-conv
decoder).
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax

from ecg_jax.models.blocks import ChannelShrink, SpatialShrink
from ecg_jax.models.layers import Conv1d, ConvTranspose1d, check_input, leaky_relu, max_pool2, upsample_linear2

WIDTHS = (2, 16, 32, 64, 128)


class CIADNet(nn.Module):
    """Encoder i: h = Conv(x); [ChannelShrink]; [SpatialShrink]; e_i = LReLU(h); x = Pool(e_i).

    Bottleneck LReLU(Conv(128->128, 3)); decoder j: x = ConvT(c[4-j]->c[3-j],
    k[3-j], same)(Up(x) + e_{3-j}), LReLU but at the end.
    Parameters: both switches 279,578; channel only 202,338; spatial only
    235,098; neither 157,858.
    """

    channel_shrink: bool = True
    spatial_shrink: bool = True

    kernels: ClassVar[tuple[int, ...]] = (11, 5, 5, 5)

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        check_input(x)
        skips = []
        for i, k in enumerate(self.kernels):
            h = Conv1d(WIDTHS[i + 1], k, name=f"enc{i}_conv")(x)
            if self.channel_shrink:
                h = ChannelShrink(activation=leaky_relu, name=f"enc{i}_channel")(h, train)
            if self.spatial_shrink:
                h = SpatialShrink(name=f"enc{i}_spatial")(h, train)
            h = leaky_relu(h)
            skips.append(h)
            x = max_pool2(h)
        x = leaky_relu(Conv1d(WIDTHS[-1], 3, name="bottleneck")(x))
        for j in range(len(self.kernels)):
            level = len(self.kernels) - 1 - j
            x = upsample_linear2(x) + skips[level]
            x = ConvTranspose1d(WIDTHS[level], self.kernels[level], name=f"dec{j}_convt")(x)
            if level > 0:
                x = leaky_relu(x)
        return x
