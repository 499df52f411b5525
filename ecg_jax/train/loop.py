"""`train_and_evaluate(config, workdir)`: the whole training job of one config.

Data flow: prepare data (cached) -> members (seeds x datasets) -> chunks that
fit in memory -> per chunk: init or resume from the last orbax checkpoint ->
compiled epochs with progress and `metrics.jsonl` -> checkpoints every N epochs
and at the end -> evaluation of every member on its test windows ->
`results.jsonl` rows (the same schema as the FFT/DWT baselines).

The workdir after a run:
  config.json       resolved config (what made the checkpoints)
  data_card.json    data provenance and per-dataset statistics
  members.json      the member list and its split into programs (chunks)
  metrics.jsonl     per-epoch, per-member training losses
  checkpoints/      orbax checkpoints, one manager per chunk
  results.jsonl     test metrics, one row per member (ecg_jax/evaluate.py)
  examples.npz      first test window of every dataset: clean, noisy, denoised
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Callable, Sequence

import jax
import ml_collections
import numpy as np

from ecg_jax.config_utils import (config_differences, config_to_json, load_config_json, resolve_config,
                                  save_config, write_text_atomic)
from ecg_jax.errors import CheckpointError
from ecg_jax.train import checkpoints, sharding
from ecg_jax.train.device_data import member_consts, split_arrays
from ecg_jax.train.engine import MemberState, TrainSettings, make_init, member_keys
from ecg_jax.train.evaluation import MemberEvaluator
from ecg_jax.train.runner import MemberRunner
from ecg_jax.train.members import Member, chunk_members, members_of
from ecg_jax.train.progress import MetricsLog, ProgressBar, TensorBoardLog, epoch_row

# What `member_parallelism="auto"` and `loop="auto"` pick per backend: see
# BENCHMARKS.md (scripts/benchmark_train.py measures the options side by side).
# On CPU a wide vmapped convolution is slower per member than one member at a
# time, and convolutions inside XLA loops are slow (runner.py).
AUTO_PARALLELISM = {"cpu": "map", "gpu": "vmap", "cuda": "vmap", "rocm": "vmap", "tpu": "vmap"}
AUTO_LOOP = {"cpu": "host"}  # everything else: "scan"

# Config fields that may change between a run and its resumption: they do not
# change what a checkpoint holds. Everything else must match the saved config.
RESUMABLE_CHANGES = ("train.epochs", "train.checkpoint_every", "train.keep_checkpoints",
                     "train.tensorboard", "train.member_parallelism", "train.loop", "data.data_dir",
                     "data.cache_dir", "experiment")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def method_id(config: ml_collections.ConfigDict) -> str:
    """The results/table id of a config's network (CIADNet ablation variants included)."""
    if config.model != "ciadnet":
        return config.model
    kw = config.model_kwargs.to_dict() if hasattr(config.model_kwargs, "to_dict") else dict(config.model_kwargs)
    ch, sp = kw.get("channel_shrink", True), kw.get("spatial_shrink", True)
    return {(True, True): "ciadnet", (True, False): "ciadnet_channel",
            (False, True): "ciadnet_spatial", (False, False): "ciadnet_base"}[(bool(ch), bool(sp))]


def resolve_parallelism(value: str, backend: str | None = None) -> str:
    if value != "auto":
        return value
    return AUTO_PARALLELISM.get(backend or jax.default_backend(), "vmap")


def resolve_loop(value: str, backend: str | None = None) -> str:
    if value != "auto":
        return value
    return AUTO_LOOP.get(backend or jax.default_backend(), "scan")


def auto_members_per_program(n_params: int, s: TrainSettings, n_members: int) -> int:
    """A memory heuristic for how many members one vmapped program can hold.

    Per member: parameters, gradients and two Adam moments (16 bytes/param),
    plus activations kept for the backward pass, estimated as ~2000 floats per
    input sample for these 4-level 1-D U-Nets (sum of widths x saved tensors).
    Under `map` only one member's activations live at a time.
    """
    per_member = 16 * n_params + (0 if s.member_parallelism == "map" else 4 * 2000 * s.batch_size * s.window)
    try:
        limit = jax.devices()[0].memory_stats()["bytes_limit"]
    except Exception:  # CPU backends report no limit
        limit = 8 * 2**30
    return max(1, min(n_members, int(0.6 * limit) // max(1, per_member) * len(jax.devices())))


def check_workdir_config(config: ml_collections.ConfigDict, workdir: str) -> None:
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return
    saved = json.loads(config_to_json(load_config_json(path)))
    new = json.loads(config_to_json(config))
    diffs = [f"{path}: workdir has {a!r}, now {b!r}"
             for path, a, b in config_differences(saved, new, RESUMABLE_CHANGES)]
    if diffs:
        raise CheckpointError(f"{workdir} was made with a different config: " + "; ".join(diffs)
                              + ". Resume with --workdir alone, or use a fresh workdir.")


def _fingerprint(config, members: Sequence[Member], params_template) -> dict:
    return {
        "model": config.model,
        "model_kwargs": config.model_kwargs.to_dict(),
        "members": [m.to_json() for m in members],
        "window": config.data.window,
        "batch_size": config.train.batch_size,
        "param_shapes": checkpoints.param_shapes(params_template),
    }


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       on_epoch_end: Callable[[int, int], None] | None = None) -> list[dict]:
    """Train every member of `config` (resuming if possible), evaluate, return result rows.

    `on_epoch_end(chunk, epoch)` is a test hook called after each finished
    (and, when due, checkpointed) epoch; raising from it simulates a kill.
    """
    from ecg_jax.datasets import data_card, prepare_data, write_data_card
    from ecg_jax.models import create_model
    from ecg_jax.evaluate import abstract_state, score_chunk, write_examples
    from ecg_jax.results import append_rows

    config = resolve_config(config)
    model = create_model(config.model, **config.model_kwargs.to_dict())
    os.makedirs(workdir, exist_ok=True)
    check_workdir_config(config, workdir)

    tic = time.perf_counter()
    prepared = prepare_data(config)
    log(f"data: {prepared.source}, {prepared.n_train} train / {prepared.n_test} test windows "
        f"({time.perf_counter() - tic:.1f}s)")
    write_data_card(data_card(prepared, config), workdir)
    save_config(config, os.path.join(workdir, "config.json"))
    if prepared.source == "synthetic":
        log("NOTE: training on the built-in SYNTHETIC ECG/noise source (no PhysioNet data configured)")

    parallelism = resolve_parallelism(config.train.member_parallelism)
    loop = resolve_loop(config.train.loop)
    settings = TrainSettings.from_config(config, prepared.n_train, parallelism, loop)
    mesh = sharding.member_mesh()
    members = members_of(config)

    probe = jax.eval_shape(make_init(model, settings), member_keys([0]))
    n_params = sum(int(np.prod(x.shape[1:])) for x in jax.tree_util.tree_leaves(probe.params))
    chunk_size = _chunk_size(config, workdir, n_params, settings, members)
    chunks = chunk_members(members, chunk_size)
    write_text_atomic(os.path.join(workdir, "members.json"), json.dumps({
        "members_per_program": chunk_size, "member_parallelism": parallelism, "loop": loop,
        "devices": [str(d) for d in jax.devices()],
        "chunks": [[m.to_json() for m in c] for c in chunks]}, indent=1) + "\n")
    log(f"{method_id(config)}: {len(members)} members ({config.seeds} seeds x {len(members) // config.seeds} "
        f"datasets) in {len(chunks)} program(s), member_parallelism={parallelism}, loop={loop}, "
        f"{sharding.n_devices(mesh)} device(s) [{jax.default_backend()}], {n_params:,} parameters each")

    train_data = sharding.place_replicated(split_arrays(prepared, "train"), mesh)
    test_data = sharding.place_replicated(split_arrays(prepared, "test"), mesh)
    metrics_log = MetricsLog(os.path.join(workdir, "metrics.jsonl"))
    tensorboard = TensorBoardLog(os.path.join(workdir, "tensorboard")) if config.train.tensorboard else None
    evaluate = MemberEvaluator(model, parallelism, loop, mesh)
    runner = MemberRunner(model, settings, mesh)
    rows, examples = [], {}

    for ci, chunk in enumerate(chunks):
        n = len(chunk)
        n_pad = sharding.padded_count(n, mesh)
        if n_pad != n:
            log(f"chunk {ci}: padding {n} members to {n_pad} (a multiple of {sharding.n_devices(mesh)} "
                f"devices) with copies of the first member; their results are discarded")
        consts = sharding.place_members(sharding.pad_members(member_consts(prepared, chunk), n_pad), mesh)
        keys = sharding.place_members(sharding.pad_members(member_keys([m.seed for m in chunk]), n_pad), mesh)
        mgr = checkpoints.manager(checkpoints.chunk_dir(workdir, ci), keep=config.train.keep_checkpoints)
        # Shapes only (no init compile) for the fingerprint and for restoring.
        abstract = abstract_state(model, settings, chunk)
        fingerprint = _fingerprint(config, chunk, abstract.params)
        start = 0
        if mgr.latest_step() is not None:
            checkpoints.check_fingerprint(
                {k: v for k, v in checkpoints.read_meta(mgr).items() if k != "epoch"},
                fingerprint, mgr.directory)
            start, restored = checkpoints.restore(mgr, abstract)
            state = sharding.place_members(sharding.pad_members(restored, n_pad), mesh)
            if start < config.train.epochs:
                log(f"chunk {ci}: resuming from the checkpoint after epoch {start}")
        else:
            tic = time.perf_counter()
            state = jax.block_until_ready(runner.init(keys))
            log(f"chunk {ci}: initialised {n} members ({time.perf_counter() - tic:.1f}s, compile included)")
        metrics_log.truncate_after(ci, start)
        state = _run_epochs(config, settings, ci, chunk, state, consts, train_data, runner.epoch, mgr,
                            fingerprint, start, metrics_log, on_epoch_end, tensorboard)

        r, e = score_chunk(config, prepared, chunk, state, consts, test_data, evaluate, method_id(config),
                           {"epochs": int(config.train.epochs)})
        rows += r
        examples.update(e)

    write_examples(workdir, prepared, members, examples)
    append_rows(os.path.join(workdir, "results.jsonl"), rows)
    return rows


def _chunk_size(config, workdir, n_params, settings, members) -> int:
    """Members per program: the config's, the one recorded in the workdir, or the heuristic."""
    if config.train.max_members_per_program > 0:
        return int(config.train.max_members_per_program)
    path = os.path.join(workdir, "members.json")
    if os.path.exists(path):  # keep the chunk layout of the checkpoints we may resume
        with open(path) as f:
            return int(json.load(f)["members_per_program"])
    return auto_members_per_program(n_params, settings, len(members))


def _run_epochs(config, settings, ci, chunk, state, consts, train_data, epoch_fn, mgr, fingerprint,
                start, metrics_log, on_epoch_end, tensorboard=None) -> MemberState:
    n = len(chunk)
    t = config.train
    bar = ProgressBar(f"chunk {ci}", t.epochs, start, settings.steps_per_epoch * n)
    was_diverged = np.zeros(n, bool)
    first = True
    for e in range(start, t.epochs):
        tic = time.perf_counter()
        state, losses = epoch_fn(state, consts, train_data)
        losses = np.asarray(jax.device_get(losses))[:n]   # one transfer per epoch: (members, steps)
        seconds = time.perf_counter() - tic
        diverged = np.asarray(jax.device_get(state.diverged))[:n]
        for j in np.flatnonzero(diverged & ~was_diverged):
            m = chunk[j]
            log(f"WARNING: member {m.index} (seed {m.seed}, {m.dataset.noise_type} {m.dataset.snr_db:g} dB) "
                f"diverged (non-finite loss or parameters) in epoch {e + 1}; frozen at its last finite state")
        was_diverged = diverged
        epoch_loss = np.where(diverged, np.nan, losses.mean(axis=1))
        lr = t.learning_rate * (t.lr_decay_factor if e >= t.lr_decay_epoch else 1.0)
        row = epoch_row(ci, e + 1, [m.index for m in chunk], epoch_loss, diverged, lr, seconds)
        metrics_log.append(row)
        if tensorboard is not None:
            tensorboard.log_epoch(row)
        bar.update(e + 1, epoch_loss, seconds, first)
        first = False
        if (e + 1) % t.checkpoint_every == 0 or e + 1 == t.epochs:
            checkpoints.save(mgr, e + 1, sharding.unpad_members(state, n), fingerprint)
        if on_epoch_end is not None:
            on_epoch_end(ci, e + 1)
    return state
