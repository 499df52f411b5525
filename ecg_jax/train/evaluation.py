"""Score every member on its test windows, in evaluation mode, in one program.

The noisy test input is mixed on the device exactly as in training, normalised
with the member's training statistics, passed through the network with running
BatchNorm statistics, de-normalised and compared with the raw clean window in
mV. Windows are processed in fixed-size blocks (`lax.map`) so that memory stays
bounded for any test-set size.
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from ecg_jax.metrics import METRIC_NAMES, window_metrics
from ecg_jax.noise import denormalize, normalize
from ecg_jax.train.device_data import MemberConsts, SplitArrays, mix_member_noise
from ecg_jax.train.engine import _over_members, _variables


def make_denoise(model: nn.Module) -> Callable:
    """`denoise(params, batch_stats, consts_one, noisy (B,L,C)) -> denoised (B,L,C)` in mV."""
    def denoise(params, batch_stats, consts: MemberConsts, noisy):
        x = normalize(noisy, consts.mean, consts.std)
        out = model.apply(_variables(params, batch_stats), x, train=False)
        return denormalize(out, consts.mean, consts.std)
    return denoise


def make_evaluate(model: nn.Module, parallelism: str, block: int = 250) -> Callable:
    """`evaluate(params, batch_stats, consts, test) -> {metric: (M,)}` (means over test windows).

    Also returns `example`: the denoised first test window of every member,
    (M, L, C), for the comparison figure.
    """
    denoise = make_denoise(model)

    def evaluate_one(params, batch_stats, consts: MemberConsts, data: SplitArrays):
        n = data.clean.shape[0]
        n_blocks = -(-n // block)
        # Pad the index list to whole blocks; padded windows are masked out of the means.
        idx = jnp.arange(n_blocks * block) % n
        valid = jnp.arange(n_blocks * block) < n

        def one_block(block_idx):
            clean, noisy = mix_member_noise(data, block_idx, consts.noise_weights, consts.snr_db)
            den = denoise(params, batch_stats, consts, noisy)
            return window_metrics(clean, den, noisy), den[0]

        per_window, firsts = jax.lax.map(one_block, idx.reshape(n_blocks, block))
        w = valid.reshape(n_blocks, block).astype(jnp.float32)
        means = {k: jnp.sum(v * w) / n for k, v in per_window.items() if k in METRIC_NAMES}
        return means, firsts[0]

    def evaluate(params, batch_stats, consts, data):
        fn = lambda p, b, c: evaluate_one(p, b, c, data)
        return _over_members(fn, parallelism)(params, batch_stats, consts)

    return evaluate
