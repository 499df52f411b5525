"""Score trained members on their test windows: in the training process, or from checkpoints.

One compiled evaluation program serves every layout (one device, a mesh,
several processes): `EvalProgram` lifts a single member's scoring of one
block of windows over the member axis and the devices, like the training
step. The noisy test input is mixed on the device exactly as in training,
normalised with the member's training statistics, passed through the network
with running BatchNorm statistics, de-normalised and compared with the raw
clean window in mV. Blocks keep memory bounded for any test-set size; they are
dispatched from the host (no host round-trip between them) and their sums
stay on the devices until the end.

Training and `evaluate_workdir` both go through `score_chunk`, so a restored
checkpoint gives exactly the numbers the training process reported.
`restore_member` loads one member on its own for inference on new signals.
"""

from __future__ import annotations

import json
import os
import time
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ecg_jax import interrupts
from ecg_jax.atomic import save_npz_atomic
from ecg_jax.config_utils import load_config_json, resolve_config
from ecg_jax.errors import CheckpointError
from ecg_jax.metrics import METRIC_NAMES, window_metrics
from ecg_jax.data.noise import denormalize, normalize
from ecg_jax.train import checkpoints, sharding
from ecg_jax.train.device_data import MemberConsts, SplitArrays, mix_member_noise, split_arrays
from ecg_jax.train.engine import MemberState, over_members, variables_of
from ecg_jax.train.experiment import Experiment, workdir_chunks
from ecg_jax.train.members import Member
from ecg_jax.train.precision import DEFAULT_INPUT_ROUNDING, DEFAULT_PRECISION, precision_fields, with_policy
from ecg_jax.train.program import guarded
from ecg_jax.workdir import claimed, pin_data_source, require_data

EVAL_BLOCK = 250  # test windows per compiled call


log = sharding.log


def make_denoise(model: nn.Module) -> Callable:
    """`denoise(params, batch_stats, consts_one, noisy (B,L,C)) -> denoised (B,L,C)` in mV."""
    def denoise(params, batch_stats, consts: MemberConsts, noisy):
        x = normalize(noisy, consts.mean, consts.std)
        out = model.apply(variables_of(params, batch_stats), x, train=False)
        return denormalize(out, consts.mean, consts.std)
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
                evaluator: EvalProgram, extra: dict | None = None):
    """Result rows and first-window outputs for the members of one program."""
    from ecg_jax.results import make_row

    n = len(chunk)
    tic = time.perf_counter()
    means, example = evaluator(state, consts, test_data)
    log(f"evaluated {n} members on {prepared.n_test} test windows ({time.perf_counter() - tic:.1f}s)")
    diverged = sharding.to_host(state.diverged)[:n]
    config = experiment.config
    rows, examples = [], {}
    for j, m in enumerate(chunk):
        rows.append(make_row(
            method=experiment.method, noise_type=m.dataset.noise_type, snr_db=m.dataset.snr_db, seed=m.seed,
            split=config.data.split, source=prepared.source, revision=config.data.get("revision", "paper"),
            metrics={k: float(v[j]) for k, v in means.items()},
            experiment=config.experiment, n_test=int(prepared.n_test), diverged=bool(diverged[j]),
            **precision_fields(experiment.settings), **(extra or {})))
        examples[f"denoised/{m.dataset.noise_type}/{m.dataset.snr_db:g}/{m.seed}"] = example[j]
    return rows, examples


def write_examples(workdir: str, prepared, members: Sequence[Member], examples: dict) -> None:
    """`examples.npz`: the first test window of each dataset, clean, noisy and every member's output.

    Keys: "clean" (L, C); "noisy/<noise>/<snr>"; "denoised/<noise>/<snr>/<seed>".
    """
    first_test = prepared.rows(slice(prepared.n_train, prepared.n_train + 1))
    out = {"clean": np.asarray(first_test.clean[0])}
    for m in members:
        key = f"noisy/{m.dataset.noise_type}/{m.dataset.snr_db:g}"
        if key not in out:
            out[key] = first_test.noisy(m.dataset.noise_type, m.dataset.snr_db)[0]
    out.update(examples)
    save_npz_atomic(os.path.join(workdir, "examples.npz"), out)


def load_workdir_config(workdir: str, data_dir: str | None = None) -> ml_collections.ConfigDict:
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise CheckpointError(f"{workdir} is not a training workdir: no config.json there")
    config = load_config_json(path)
    if data_dir:
        config.data.data_dir = data_dir
    config = pin_data_source(resolve_config(config), workdir)
    require_data(config, workdir)
    return config


def restore_chunk(experiment: Experiment, workdir: str, ci: int, chunk: Sequence[Member],
                  epoch: int | None = None) -> tuple[int, MemberState]:
    """A chunk's checkpoint (latest, or after `epoch`), fingerprint-checked, sharded over the mesh."""
    directory = checkpoints.chunk_dir(workdir, ci)
    mgr = checkpoints.manager(directory, read_only=True)
    if mgr.latest_step() is None:
        raise CheckpointError(f"no checkpoint in {mgr.directory}: train first (scripts/train.py)")
    abstract, fingerprint = experiment.abstract_state(1), experiment.fingerprint(chunk)
    if epoch is None:   # the newest intact checkpoint; damaged ones are reported and left in place
        step, state = checkpoints.restore_latest_intact(directory, abstract, len(chunk), experiment.mesh,
                                                        fingerprint, move_damaged=False, warn=log)
        if state is None:
            raise CheckpointError(f"no intact checkpoint in {directory}: train again (scripts/train.py)")
        return step, state
    if epoch not in mgr.all_steps():
        raise CheckpointError(f"no checkpoint after epoch {epoch} in {mgr.directory}; "
                              f"available: {', '.join(map(str, sorted(mgr.all_steps())))}")
    try:
        meta = checkpoints.read_meta(mgr, epoch)
    except Exception as e:  # noqa: BLE001 - an unreadable step, as restore() reports it
        raise checkpoints.DamagedCheckpoint(f"checkpoint {os.path.join(directory, str(epoch))} is damaged: its "
                                            f"metadata cannot be read ({checkpoints.first_line(e)})") from None
    checkpoints.check_fingerprint(meta, fingerprint, mgr.directory)
    return checkpoints.restore(mgr, abstract, len(chunk), experiment.mesh, epoch)


def evaluate_workdir(workdir: str, epoch: int | None = None, data_dir: str | None = None,
                     write: bool = True) -> list[dict]:
    """Restore every program's checkpoint (latest, or after `epoch`) and score all members.

    With `write`, the rows replace the workdir's rows of the same runs and epoch
    in results.jsonl, and (for the latest checkpoint only) examples.npz is
    rewritten; the workdir is locked against a concurrent run meanwhile.
    """
    config = load_workdir_config(workdir, data_dir)
    again = f"python scripts/evaluate.py --workdir {workdir}" + (f" --epoch {epoch}" if epoch is not None else "")
    with interrupts.resume_hint(f"rerun `{again}`"), claimed(workdir, write=write):
        return _evaluate_workdir(workdir, config, epoch, write and jax.process_index() == 0)


def _evaluate_workdir(workdir: str, config, epoch: int | None, write: bool) -> list[dict]:
    from ecg_jax.data import prepare_data
    from ecg_jax.results import replace_rows

    prepared = prepare_data(config)
    experiment = Experiment.from_config(config, prepared.n_train)
    evaluator = EvalProgram.for_experiment(experiment)
    test_data = sharding.put_replicated(split_arrays(prepared, "test", experiment.segment_keys(prepared)), experiment.mesh)
    rows, examples = [], {}
    chunks = workdir_chunks(workdir, experiment)
    for ci, chunk in enumerate(chunks):
        interrupts.note_progress(f"while scoring chunk {ci} of {len(chunks)} (results.jsonl not changed yet)")
        step, state = restore_chunk(experiment, workdir, ci, chunk, epoch)
        log(f"chunk {ci}: restored the checkpoint after epoch {step} ({len(chunk)} members)")
        consts = experiment.chunk_consts(prepared, chunk)
        r, e = score_chunk(experiment, prepared, chunk, state, consts, test_data, evaluator, {"epochs": int(step)})
        rows += r
        examples.update(e)
    if write:
        if epoch is None:   # the figures show the final models; an older epoch leaves them alone
            write_examples(workdir, prepared, [m for c in chunks for m in c], examples)
        replace_rows(os.path.join(workdir, "results.jsonl"), rows)
    return rows


def restore_member(workdir: str, index: int, epoch: int | None = None) -> dict:
    """One member on its own, for inference: its network, variables and normalisation.

    Returns {"model", "variables", "mean", "std", "member", "epoch"}; denoise a
    (B, L, 2) mV array with
      out = model.apply(variables, (x - mean) / std, train=False) * std + mean
    """
    config = load_workdir_config(workdir)
    experiment = Experiment.from_config(config)
    members = experiment.members
    if not 0 <= index < len(members):
        raise CheckpointError(f"member {index} does not exist: {workdir} has members 0..{len(members) - 1}")
    chunks = workdir_chunks(workdir, experiment)
    ci = next(i for i, c in enumerate(chunks) if any(m.index == index for m in c))
    j = [m.index for m in chunks[ci]].index(index)
    step, state = restore_chunk(experiment, workdir, ci, chunks[ci], epoch)
    one = jax.tree_util.tree_map(lambda x: x[j], sharding.to_host(state))
    variables = {"params": one.params, **({"batch_stats": one.batch_stats} if one.batch_stats else {})}
    with open(os.path.join(workdir, "data_card.json")) as f:
        card = json.load(f)
    member = members[index]
    stats = next(s for s in card["normalization"]
                 if s["noise_type"] == member.dataset.noise_type and float(s["snr_db"]) == float(member.dataset.snr_db))
    return {"model": experiment.model, "variables": variables, "mean": np.asarray(stats["mean"], np.float32),
            "std": np.asarray(stats["std"], np.float32), "member": member, "epoch": step}
