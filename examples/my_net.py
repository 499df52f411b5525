"""A small denoising network of your own, put through the benchmark without touching ecg-jax.

    ecg-jax train --config unet:smoke --config.model=examples/my_net.py:MyNet --workdir runs/my_net
    ecg-jax train --config final:smoke --config.model=examples/my_net.py:MyNet --workdir runs/my_net_final
    ecg-jax evaluate --workdir runs/my_net
    ecg-jax summary --models=examples/my_net.py:MyNet
    ecg-jax train --config unet:smoke --config.model=examples/my_net.py:MyNet --config.model_kwargs.features=32 ...
    ecg-jax export --workdir runs/my_net --output my_net.npz     # the weights record this file and its sha256
    ecg-jax denoise rec.npy --fs 360 --weights my_net.npz --output clean.npy
    ecg-jax reproduce --config final:all --workdir R --extra_models=$PWD/examples/my_net.py:MyNet

The contract every network meets (checked before training writes anything;
ecg_jax/models/external.py):
  * a `flax.linen.Module` subclass, called as `apply(variables, x, train=...)`;
  * x is (batch, length, 2) float32 (two ECG leads, normalised); the output has
    the same shape and dtype, in train and in eval mode;
  * its variables are `params` and, with BatchNorm, `batch_stats` (nothing else);
  * the initialised network's output is finite, and eval mode is deterministic.

The constructor options come from the config's `model_kwargs` (a config file:
`common.network_config("examples/my_net.py:MyNet", "smoke", features=32)`).
`kernels` has one entry per convolution block; `final:smoke` passes the final
U-Net's kernels (17, 17, 7, 7), which this network takes as its own.
The workdir records this file's path and sha256 (model_source.json): evaluating
after editing it stops, unless you pass --allow_changed_model_source.
"""

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp


class MyNet(nn.Module):
    """Conv -> BatchNorm -> LeakyReLU blocks, then a 1x1 convolution predicting the noise to remove."""

    features: int = 16
    kernels: Sequence[int] = (9, 9, 9)

    @nn.compact
    def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
        h = x
        for kernel in self.kernels:
            h = nn.Conv(self.features, (int(kernel),), padding="SAME")(h)
            h = nn.BatchNorm(use_running_average=not train, momentum=0.9)(h)
            h = nn.leaky_relu(h, negative_slope=0.2)
        noise = nn.Conv(x.shape[-1], (1,))(h)
        return x - noise
