"""DRSN: the final revision's U-Net with residual shrinkage encoder blocks (models.md).

The reference (mallocobject/DANCE, models/DRSN.py, layers/drsn_block.py,
layers/shcink.py) builds it from the same skeleton as its final DANCE:

* encoder level i = 0..3: Conv(c[i]->c[i+1], k[i]) -> residual shrinkage
  block -> LReLU -> BN; levels 0..2 are kept as skips and max-pooled, level 3
  runs at L/8 (three poolings, no separate bottleneck);
* decoder: level 0 (128->64) runs at L/8 straight after encoder level 3;
  levels 1..3 are Up, + skip, then Conv -> LReLU -> BN. Every decoder level,
  the last included, ends with LReLU and BN.

Residual shrinkage block (C channels, stride 1, so the shortcut is the
identity): r = Shrink(BN(Conv3(ReLU(BN(Conv3(x)))))) with bias-free 3-tap
convolutions, y = ReLU(r + x). Shrink is the soft threshold at the *signed*
channel mean times a learned fraction, m = GAP(x),
a = sigmoid(FC(ReLU(BN(FC(m))))), y = soft(x, m * a): exactly the
`Shrinkage` block of AGS-UNet, reused here. The stored copy of shcink.py has
the BatchNorm inside Shrink commented out (327,942 parameters); models.md's
328,422 counts it (2C per block, 480 in all), so it is kept.
"""

from __future__ import annotations

import flax.linen as nn
import jax

from ecg_jax.models.blocks import Shrinkage
from ecg_jax.models.layers import BatchNorm, Conv1d, check_input, leaky_relu, max_pool2, upsample_linear2

WIDTHS = (2, 16, 32, 64, 128)
KERNELS = (13, 7, 7, 7)


class ResidualShrinkage(nn.Module):
    """y = ReLU(Shrink(BN(Conv3(ReLU(BN(Conv3(x)))))) + x); C channels in and out.

    Parameters: 6C^2 + 4C (convolutions and their BatchNorms) + 2C^2 + 4C (Shrink).
    """

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        channels = x.shape[-1]
        h = Conv1d(channels, 3, use_bias=False, name="conv1")(x)
        h = jax.nn.relu(BatchNorm(name="bn1")(h, train))
        h = Conv1d(channels, 3, use_bias=False, name="conv2")(h)
        h = BatchNorm(name="bn2")(h, train)
        h = Shrinkage(name="shrink")(h, train)
        return jax.nn.relu(h + x)


class DRSN(nn.Module):
    """Encoder Conv -> ResidualShrinkage -> LReLU -> BN; decoder Conv -> LReLU -> BN. 328,422 parameters."""

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        check_input(x)
        skips = []
        for i, k in enumerate(KERNELS):
            x = Conv1d(WIDTHS[i + 1], k, name=f"enc{i}_conv")(x)
            x = ResidualShrinkage(name=f"enc{i}_rsb")(x, train)
            x = BatchNorm(name=f"enc{i}_bn")(leaky_relu(x), train)
            if i < len(KERNELS) - 1:
                skips.append(x)
                x = max_pool2(x)
        for j in range(len(KERNELS)):
            level = len(KERNELS) - 1 - j          # decoder j mirrors encoder `level`
            if j > 0:
                x = upsample_linear2(x) + skips[level]
            x = Conv1d(WIDTHS[level], KERNELS[level], name=f"dec{j}_conv")(x)
            x = BatchNorm(name=f"dec{j}_bn")(leaky_relu(x), train)
        return x
