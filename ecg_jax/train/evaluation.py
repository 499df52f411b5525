"""Score every member on its test windows, in evaluation mode.

The noisy test input is mixed on the device exactly as in training, normalised
with the member's training statistics, passed through the network with running
BatchNorm statistics, de-normalised and compared with the raw clean window in
mV. Windows go through in fixed-size blocks so memory stays bounded for any
test-set size; like training (runner.py), the blocks are a `lax.map` inside one
program (loop="scan") or one compiled call per block (loop="host", for CPU).
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ecg_jax.metrics import METRIC_NAMES, window_metrics
from ecg_jax.noise import denormalize, normalize
from ecg_jax.train import sharding
from ecg_jax.train.device_data import MemberConsts, SplitArrays, mix_member_noise
from ecg_jax.train.engine import MemberState, _variables, over_members


def make_denoise(model: nn.Module) -> Callable:
    """`denoise(params, batch_stats, consts_one, noisy (B,L,C)) -> denoised (B,L,C)` in mV."""
    def denoise(params, batch_stats, consts: MemberConsts, noisy):
        x = normalize(noisy, consts.mean, consts.std)
        out = model.apply(_variables(params, batch_stats), x, train=False)
        return denormalize(out, consts.mean, consts.std)
    return denoise


def make_block_sums_one(model: nn.Module) -> Callable:
    """`(params, batch_stats, consts, data, idx (B,), valid (B,)) -> (metric sums, first output)`."""
    denoise = make_denoise(model)

    def block_sums(params, batch_stats, consts: MemberConsts, data: SplitArrays, idx, valid):
        clean, noisy = mix_member_noise(data, idx, consts.noise_weights, consts.snr_db)
        den = denoise(params, batch_stats, consts, noisy)
        per_window = window_metrics(clean, den, noisy)
        w = valid.astype(jnp.float32)
        return {k: jnp.sum(per_window[k] * w) for k in METRIC_NAMES}, den[0]

    return block_sums


class MemberEvaluator:
    """`evaluate(state, consts, data) -> ({metric: (M,)}, first_outputs (M, L, C))` as numpy.

    Metrics are means over the test windows; `first_outputs` is every member's
    denoised first test window (for the comparison figure).
    """

    def __init__(self, model: nn.Module, parallelism: str, loop: str, mesh=None, block: int = 250):
        self.block, self.loop, self.mesh = block, loop, mesh
        self.per_member = loop == "host" and parallelism == "map" and mesh is None
        block_sums = make_block_sums_one(model)
        if self.per_member:
            self._block_one = jax.jit(block_sums)
        elif loop == "host":
            self._block = sharding.distribute(over_members(block_sums, parallelism, 3), mesh, 3, 3)
        else:
            def all_blocks_one(params, batch_stats, consts, data, idx, valid):
                sums, firsts = jax.lax.map(
                    lambda iv: block_sums(params, batch_stats, consts, data, iv[0], iv[1]), (idx, valid))
                return {k: v.sum(0) for k, v in sums.items()}, firsts[0]
            self._all = sharding.distribute(over_members(all_blocks_one, parallelism, 3), mesh, 3, 3)

    def __call__(self, state: MemberState, consts: MemberConsts, data: SplitArrays):
        n = data.clean.shape[0]
        n_blocks = -(-n // self.block)
        # Pad the index list to whole blocks; padded windows are masked out of the sums.
        idx = jnp.arange(n_blocks * self.block).reshape(n_blocks, self.block) % n
        valid = jnp.arange(n_blocks * self.block).reshape(n_blocks, self.block) < n
        if self.loop == "scan" and not self.per_member:
            sums, first = self._all(state.params, state.batch_stats, consts, data, idx, valid)
        elif not self.per_member:
            parts = [self._block(state.params, state.batch_stats, consts, data, idx[b], valid[b])
                     for b in range(n_blocks)]
            sums = {k: sum(p[0][k] for p in parts) for k in METRIC_NAMES}
            first = parts[0][1]
        else:
            m_count = consts.snr_db.shape[0]
            per_member = []
            for m in range(m_count):
                take = lambda t: jax.tree_util.tree_map(lambda x: x[m], t)
                p, b, c = take(state.params), take(state.batch_stats), take(consts)
                parts = [self._block_one(p, b, c, data, idx[i], valid[i]) for i in range(n_blocks)]
                per_member.append(({k: sum(q[0][k] for q in parts) for k in METRIC_NAMES}, parts[0][1]))
            sums = {k: jnp.stack([pm[0][k] for pm in per_member]) for k in METRIC_NAMES}
            first = jnp.stack([pm[1] for pm in per_member])
        sums, first = jax.device_get((sums, first))
        return {k: np.asarray(v) / n for k, v in sums.items()}, np.asarray(first)
