"""Evaluate trained members: inside the training process, or from checkpoints.

Both paths go through `score_chunk`, so a restored checkpoint gives exactly
the numbers the training process reported. `evaluate_workdir` restores the
latest (or a chosen) checkpoint of every program of a training workdir and
appends rows to `<workdir>/results.jsonl`; `restore_member` loads one member
on its own for inference on new signals.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Sequence

import jax
import ml_collections
import numpy as np

from ecg_jax.config_utils import load_config_json, resolve_config
from ecg_jax.errors import CheckpointError
from ecg_jax.train import checkpoints, sharding
from ecg_jax.train.device_data import member_consts, split_arrays
from ecg_jax.train.engine import TrainSettings, make_init, member_keys
from ecg_jax.train.evaluation import MemberEvaluator
from ecg_jax.train.members import Member, chunk_members, members_of


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def score_chunk(config, prepared, chunk: Sequence[Member], state, consts, test_data,
                evaluator: MemberEvaluator, method: str, extra: dict | None = None):
    """Result rows and first-window outputs for the members of one program."""
    from ecg_jax.results import make_row

    n = len(chunk)
    tic = time.perf_counter()
    means, example = evaluator(state, consts, test_data)
    log(f"evaluated {n} members on {prepared.n_test} test windows ({time.perf_counter() - tic:.1f}s)")
    diverged = np.asarray(jax.device_get(state.diverged))[:n]
    rows, examples = [], {}
    for j, m in enumerate(chunk):
        rows.append(make_row(
            method=method, noise_type=m.dataset.noise_type, snr_db=m.dataset.snr_db, seed=m.seed,
            split=config.data.split, source=prepared.source,
            metrics={k: float(v[j]) for k, v in means.items()},
            experiment=config.experiment, n_test=int(prepared.n_test), diverged=bool(diverged[j]),
            **(extra or {})))
        examples[f"denoised/{m.dataset.noise_type}/{m.dataset.snr_db:g}/{m.seed}"] = example[j]
    return rows, examples


def write_examples(workdir: str, prepared, members: Sequence[Member], examples: dict) -> None:
    """`examples.npz`: the first test window of each dataset, clean, noisy and every member's output.

    Keys: "clean" (L, C); "noisy/<noise>/<snr>"; "denoised/<noise>/<snr>/<seed>".
    """
    from ecg_jax.noise import mix_at_snr, noise_for_type

    i = prepared.n_train
    out = {"clean": np.asarray(prepared.clean[i])}
    for m in members:
        key = f"noisy/{m.dataset.noise_type}/{m.dataset.snr_db:g}"
        if key not in out:
            noise = noise_for_type({k: v[i] for k, v in prepared.noise.items()}, m.dataset.noise_type)
            out[key] = np.asarray(mix_at_snr(out["clean"], noise, m.dataset.snr_db))
    out.update(examples)
    tmp = os.path.join(workdir, "examples.tmp.npz")
    np.savez(tmp, **out)
    os.replace(tmp, os.path.join(workdir, "examples.npz"))


def load_workdir_config(workdir: str, data_dir: str | None = None) -> ml_collections.ConfigDict:
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise CheckpointError(f"{workdir} is not a training workdir: no config.json there")
    config = load_config_json(path)
    if data_dir:
        config.data.data_dir = data_dir
    return resolve_config(config)


def _chunks(workdir: str, config) -> list[list[Member]]:
    with open(os.path.join(workdir, "members.json")) as f:
        size = int(json.load(f)["members_per_program"])
    return chunk_members(members_of(config), size)


def abstract_state(model, settings: TrainSettings, chunk: Sequence[Member]):
    """Shapes and dtypes of a chunk's stacked state, without running (or compiling) init."""
    return jax.eval_shape(make_init(model, settings), member_keys([m.seed for m in chunk]))


def evaluate_workdir(workdir: str, epoch: int | None = None, data_dir: str | None = None,
                     write: bool = True) -> list[dict]:
    """Restore every program's checkpoint (latest, or after `epoch`) and score all members."""
    from ecg_jax.datasets import prepare_data
    from ecg_jax.models import create_model
    from ecg_jax.results import append_rows
    from ecg_jax.train.loop import _fingerprint, method_id, resolve_loop, resolve_parallelism

    config = load_workdir_config(workdir, data_dir)
    model = create_model(config.model, **config.model_kwargs.to_dict())
    prepared = prepare_data(config)
    parallelism = resolve_parallelism(config.train.member_parallelism)
    loop = resolve_loop(config.train.loop)
    settings = TrainSettings.from_config(config, prepared.n_train, parallelism, loop)
    mesh = sharding.member_mesh()
    evaluator = MemberEvaluator(model, parallelism, loop, mesh)
    test_data = sharding.place_replicated(split_arrays(prepared, "test"), mesh)
    rows, examples = [], {}
    chunks = _chunks(workdir, config)
    for ci, chunk in enumerate(chunks):
        mgr = checkpoints.manager(checkpoints.chunk_dir(workdir, ci), read_only=True)
        if mgr.latest_step() is None:
            raise CheckpointError(f"no checkpoint in {mgr.directory}: train first (scripts/train.py)")
        abstract = abstract_state(model, settings, chunk)
        meta = checkpoints.read_meta(mgr, epoch)
        checkpoints.check_fingerprint({k: v for k, v in meta.items() if k != "epoch"},
                                      _fingerprint(config, chunk, abstract.params), mgr.directory)
        step, state = checkpoints.restore(mgr, abstract, epoch)
        log(f"chunk {ci}: restored the checkpoint after epoch {step} ({len(chunk)} members)")
        n_pad = sharding.padded_count(len(chunk), mesh)
        state = sharding.place_members(sharding.pad_members(state, n_pad), mesh)
        consts = sharding.place_members(sharding.pad_members(member_consts(prepared, chunk), n_pad), mesh)
        r, e = score_chunk(config, prepared, chunk, state, consts, test_data, evaluator, method_id(config),
                           {"epochs": int(step)})
        rows += r
        examples.update(e)
    if write:
        write_examples(workdir, prepared, [m for c in chunks for m in c], examples)
        append_rows(os.path.join(workdir, "results.jsonl"), rows)
    return rows


def restore_member(workdir: str, index: int, epoch: int | None = None) -> dict:
    """One member on its own, for inference: its network, variables and normalisation.

    Returns {"model", "variables", "mean", "std", "member", "epoch"}; denoise a
    (B, L, 2) mV array with
      out = model.apply(variables, (x - mean) / std, train=False) * std + mean
    """
    from ecg_jax.models import create_model
    from ecg_jax.train.loop import resolve_loop, resolve_parallelism

    config = load_workdir_config(workdir)
    members = members_of(config)
    if not 0 <= index < len(members):
        raise CheckpointError(f"member {index} does not exist: {workdir} has members 0..{len(members) - 1}")
    chunks = _chunks(workdir, config)
    ci = next(i for i, c in enumerate(chunks) if any(m.index == index for m in c))
    j = [m.index for m in chunks[ci]].index(index)
    model = create_model(config.model, **config.model_kwargs.to_dict())
    n_train = round(config.data.n_windows * config.data.train_fraction)
    settings = TrainSettings.from_config(config, n_train, resolve_parallelism(config.train.member_parallelism),
                                         resolve_loop(config.train.loop))
    mgr = checkpoints.manager(checkpoints.chunk_dir(workdir, ci), read_only=True)
    step, state = checkpoints.restore(mgr, abstract_state(model, settings, chunks[ci]), epoch)
    one = jax.tree_util.tree_map(lambda x: np.asarray(x[j]), state)
    variables = {"params": one.params, **({"batch_stats": one.batch_stats} if one.batch_stats else {})}
    with open(os.path.join(workdir, "data_card.json")) as f:
        card = json.load(f)
    member = members[index]
    stats = next(s for s in card["normalization"]
                 if s["noise_type"] == member.dataset.noise_type and float(s["snr_db"]) == float(member.dataset.snr_db))
    return {"model": model, "variables": variables, "mean": np.asarray(stats["mean"], np.float32),
            "std": np.asarray(stats["std"], np.float32), "member": member, "epoch": step}
