"""Score trained members on their test windows: the evaluation program training and evaluation share.

One compiled evaluation program serves every layout (one device, a mesh,
several processes): `EvalProgram` lifts a single member's scoring of one
block of windows over the member axis and the devices, like the training
step. The noisy test input is mixed on the device exactly as in training,
normalised with the member's training statistics, passed through the network
with running BatchNorm statistics, de-normalised and compared with the raw
clean window in mV. Blocks keep memory bounded for any test-set size; they are
dispatched from the host (no host round-trip between them) and their sums
stay on the devices until the end.

The training loop scores each chunk with `score_chunk` when it finishes, and
ecg_jax/evaluation.py scores restored checkpoints with the same function, so a
restored checkpoint gives exactly the numbers the training process reported.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ecg_jax.atomic import save_npz_atomic
from ecg_jax.metrics import METRIC_NAMES, window_metrics
from ecg_jax.normalization import apply_in_mv
from ecg_jax.results import make_row
from ecg_jax.sweep_points import point_to_json
from ecg_jax.train import sharding
from ecg_jax.train.device_data import MemberConsts, SplitArrays, mix_member_noise
from ecg_jax.train.engine import MemberState, over_members, variables_of
from ecg_jax.train.experiment import Experiment
from ecg_jax.train.members import Member
from ecg_jax.train.precision import DEFAULT_INPUT_ROUNDING, DEFAULT_PRECISION, precision_fields, with_policy
from ecg_jax.train.program import guarded

EVAL_BLOCK = 250  # test windows per compiled call


log = sharding.log


def make_denoise(model: nn.Module) -> Callable:
    """`denoise(params, batch_stats, consts_one, noisy (B,L,C)) -> denoised (B,L,C)` in mV."""
    def denoise(params, batch_stats, consts: MemberConsts, noisy):
        return apply_in_mv(model, variables_of(params, batch_stats), noisy, consts.mean, consts.std)
    return denoise


def make_block_sums_one(model: nn.Module) -> Callable:
    """`(params, batch_stats, consts, data, idx (B,), weight (B,)) -> (weighted metric sums, first output)`."""
    denoise = make_denoise(model)

    def block_sums(params, batch_stats, consts: MemberConsts, data: SplitArrays, idx, weight):
        clean, noisy = mix_member_noise(data, idx, consts)
        den = denoise(params, batch_stats, consts, noisy)
        per_window = window_metrics(clean, den, noisy)
        w = weight.astype(jnp.float32)
        return {k: jnp.sum(per_window[k] * w) for k in METRIC_NAMES}, den[0]

    return block_sums


def window_weights(n: int, aggregation: str, batch: int) -> np.ndarray:
    """Per-window weights w with mean = sum(w * m) / n for either aggregation (EvalProgram)."""
    if aggregation == "window":
        return np.ones(n, np.float32)
    sizes = np.diff(np.append(np.arange(0, n, batch), n))      # consecutive batches, the last one short
    return np.repeat(n / (sizes * len(sizes)), sizes).astype(np.float32)


class EvalProgram:
    """`evaluate(state, consts, data) -> ({metric: (M,)}, first_outputs (M, L, C))` as numpy.

    Metrics are means over the test windows (`aggregation="window"`, the
    protocol), or means of per-batch means over consecutive test batches of
    `batch` windows (`"batch_means"`, how the final revision's reference scores:
    its last, smaller batch weighs as much as a full one). Both are one weighted
    sum per window, so one compiled program serves either. `first_outputs` is
    every member's denoised first test window (for the comparison figure).
    """

    def __init__(self, model: nn.Module, parallelism: str, mesh, block: int = EVAL_BLOCK, max_shapes: int = 2,
                 aggregation: str = "window", batch: int = 64, precision: str = DEFAULT_PRECISION,
                 conv_input_rounding: str = DEFAULT_INPUT_ROUNDING):
        self.block, self.mesh, self.aggregation, self.batch = block, mesh, aggregation, batch
        ms, rep = sharding.member_sharding(mesh), sharding.replicated_sharding(mesh)
        lifted = over_members(make_block_sums_one(model), parallelism, 3)
        lifted = with_policy(guarded(lifted, max_shapes), precision, conv_input_rounding)   # as in training
        self._block = jax.jit(sharding.over_devices(lifted, mesh, 3, 3), in_shardings=(ms, ms, ms, rep, rep, rep),
                              out_shardings=ms)
        self._add = jax.jit(lambda a, b: jax.tree_util.tree_map(jnp.add, a, b), out_shardings=ms)

    @classmethod
    def for_experiment(cls, experiment: Experiment, max_shapes: int = 2) -> "EvalProgram":
        t = experiment.config.train
        return cls(experiment.model, experiment.settings.member_parallelism, experiment.mesh,
                   max_shapes=max_shapes, aggregation=t.get("score_aggregation", "window"),
                   batch=int(t.batch_size), precision=experiment.settings.precision,
                   conv_input_rounding=experiment.settings.conv_input_rounding)

    def __call__(self, state: MemberState, consts: MemberConsts, data: SplitArrays):
        n = int(data.clean.shape[0])
        n_blocks = -(-n // self.block)
        # Pad the index list to whole blocks; padded windows weigh 0 in the sums.
        flat = np.arange(n_blocks * self.block).reshape(n_blocks, self.block)
        weight = np.concatenate([window_weights(n, self.aggregation, self.batch),
                                 np.zeros(n_blocks * self.block - n, np.float32)]).reshape(n_blocks, self.block)
        blocks = [sharding.put_replicated(((flat[b] % n).astype(np.int32), weight[b]), self.mesh)
                  for b in range(n_blocks)]
        sums, first = self._block(state.params, state.batch_stats, consts, data, *blocks[0])
        for i, v in blocks[1:]:
            sums = self._add(sums, self._block(state.params, state.batch_stats, consts, data, i, v)[0])
        sums, first = sharding.to_host((sums, first))
        return {k: np.asarray(v) / n for k, v in sums.items()}, np.asarray(first)


def score_chunk(experiment: Experiment, prepared, chunk: Sequence[Member], state, consts, test_data,
                evaluator: EvalProgram, extra: dict | None = None, validation_data: SplitArrays | None = None):
    """Result rows and first-window outputs for the members of one program.

    With `validation_data` (the held-out training records, data/validation.py) each row also has
    `validation_metrics`, the same means over the validation windows: what a sweep chooses its point on.
    A sweep member's row names its point (`sweep_point`, and the overrides as `sweep`).
    """
    n = len(chunk)
    tic = time.perf_counter()
    means, example = evaluator(state, consts, test_data)
    log(f"evaluated {n} members on {prepared.n_test} test windows ({time.perf_counter() - tic:.1f}s)")
    validation = None
    if validation_data is not None:
        tic = time.perf_counter()
        validation, _ = evaluator(state, consts, validation_data)
        log(f"evaluated {n} members on {int(validation_data.clean.shape[0])} validation windows "
            f"({time.perf_counter() - tic:.1f}s)")
    diverged = sharding.to_host(state.diverged)[:n]
    config = experiment.config
    rows, examples = [], {}
    for j, m in enumerate(chunk):
        fields = dict(extra or {})
        if validation is not None:
            fields["validation_metrics"] = {k: float(v[j]) for k, v in validation.items()}
        if m.point:
            fields.update(sweep_point=m.point_name, sweep=point_to_json(m.overrides))
        rows.append(make_row(
            method=experiment.method, noise_type=m.dataset.noise_type, snr_db=m.dataset.snr_db, seed=m.seed,
            split=config.data.split, source=prepared.source, revision=config.data.get("revision", "paper"),
            metrics={k: float(v[j]) for k, v in means.items()},
            experiment=config.experiment, n_test=int(prepared.n_test), diverged=bool(diverged[j]),
            **precision_fields(experiment.settings), **experiment.row_fields, **fields))
        examples[example_key(m)] = example[j]
    return rows, examples


def example_key(m: Member) -> str:
    """examples.npz key of a member's output; a sweep member's names its point (the figures show the
    members of plain runs, "denoised/...", and of a sweep's first point, also stored under that key)."""
    key = f"denoised/{m.dataset.noise_type}/{m.dataset.snr_db:g}/{m.seed}"
    return key if not m.point else f"sweep/{m.point_name}/{key}"


def write_examples(workdir: str, prepared, members: Sequence[Member], examples: dict,
                   epochs: int | None = None) -> None:
    """`examples.npz`: the first test window of each dataset, clean, noisy and every member's output.

    Keys: "clean" (L, C); "noisy/<noise>/<snr>"; "denoised/<noise>/<snr>/<seed>"; "epochs" (a scalar:
    the epoch the outputs come from, as the results rows' "epochs", so the example figures and the
    tables can be checked to show the same models).
    """
    first_test = prepared.rows(slice(prepared.n_train, prepared.n_train + 1))
    out = {"clean": np.asarray(first_test.clean[0])}
    for m in members:
        key = f"noisy/{m.dataset.noise_type}/{m.dataset.snr_db:g}"
        if key not in out:
            out[key] = first_test.noisy(m.dataset.noise_type, m.dataset.snr_db)[0]
    out.update(examples)
    first_point = members[0].point if members else ()
    for m in members:   # a sweep's first point stands for the sweep in the example figures
        if m.point and m.point == first_point and example_key(m) in examples:
            out[example_key(dataclasses.replace(m, point=()))] = examples[example_key(m)]
    if epochs is not None:
        out["epochs"] = np.asarray(int(epochs))
    save_npz_atomic(os.path.join(workdir, "examples.npz"), out)
