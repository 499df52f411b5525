"""ACDAE as the reference's final revision has it (models/ACDAE.py, layers/eca.py; models.md).

It differs from the paper-era ACDAE (`ecg_jax.models.unet.ACDAE`, 201,006):

* no bottleneck: encoder level 3 (Conv 64->128, LReLU) runs at L/8 after three
  poolings and feeds the decoder directly;
* the upsampling sits inside the decoder's activation, after the convolution:
  decoder level j = 0..2 is x = ECA(LReLU(Up(Conv(x)))) + e_{2-j}, so the
  convolution runs at the lower resolution;
* ECA slides a 7-tap kernel (zero padding 3) across the channel axis;
* the last level is Conv(16->2, 13) alone: the output is linear.

Encoder level i = 0..2: e_i = LReLU(Conv(c[i]->c[i+1], k[i])(x)), x = Pool(e_i).
No BatchNorm. 151,735 parameters.
"""

from __future__ import annotations

import flax.linen as nn
import jax

from ecg_jax.models.blocks import ECA
from ecg_jax.models.layers import Conv1d, check_input, leaky_relu, max_pool2, upsample_linear2

WIDTHS = (2, 16, 32, 64, 128)
KERNELS = (13, 7, 7, 7)
ECA_KERNEL = 7


class ACDAEFinal(nn.Module):
    """Conv/LReLU encoder with max pooling; decoder Conv -> Up -> LReLU -> ECA(7), + skip."""

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        check_input(x)
        skips = []
        for i, k in enumerate(KERNELS):
            x = leaky_relu(Conv1d(WIDTHS[i + 1], k, name=f"enc{i}_conv")(x))
            if i < len(KERNELS) - 1:
                skips.append(x)
                x = max_pool2(x)
        for j in range(len(KERNELS)):
            level = len(KERNELS) - 1 - j          # decoder j mirrors encoder `level`
            x = Conv1d(WIDTHS[level], KERNELS[level], name=f"dec{j}_conv")(x)
            if level > 0:
                x = leaky_relu(upsample_linear2(x))
                x = ECA(kernel_size=ECA_KERNEL, name=f"dec{j}_eca")(x, train) + skips[level - 1]
        return x
