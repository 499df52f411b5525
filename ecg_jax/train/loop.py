"""`train_and_evaluate(config, workdir)`: the whole training job of one config.

Data flow: prepare data (cached) -> members (seeds x datasets) -> chunks that
fit in memory (measured by XLA's memory analysis of the compiled step) -> per
chunk: init or resume from the last orbax checkpoint -> compiled epochs with
progress and `metrics.jsonl` -> checkpoints every N epochs and at the end ->
evaluation of every member on its test windows -> `results.jsonl` rows (the
same schema as the FFT/DWT baselines).

Every process of a multi-process run executes this same function on the same
config; each holds the shards of the members its devices own. Only process 0
writes files other than checkpoint shards (config, data card, members,
metrics, results, examples).

The workdir after a run:
  config.json       resolved config (what made the checkpoints)
  model_source.json an external network's spec, file and sha256 (ecg_jax/models/external.py)
  data_card.json    data provenance and per-dataset statistics
  members.json      the member list, its split into programs, and the memory plan
  metrics.jsonl     per-epoch, per-member training losses
  checkpoints/      orbax checkpoints, one manager per chunk
  results.jsonl     test metrics, one row per member (train/scoring.py)
  examples.npz      first test window of every dataset: clean, noisy, denoised
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Callable

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from ecg_jax import interrupts
from ecg_jax.config_utils import (
    RESUMABLE_CHANGES,
    check_trainable,
    config_differences,
    config_to_json,
    load_config_json,
    read_json_file,
    resolve_config,
    save_config,
    write_text_atomic,
)
from ecg_jax.data import data_card, prepare_data, write_data_card
from ecg_jax.data.validation import hold_out_validation
from ecg_jax.errors import CheckpointError, ConfigError, DataError
from ecg_jax.models import check_model, is_builtin, model_source
from ecg_jax.models.external import SOURCE_RECORD, check_recorded_source
from ecg_jax.process_settings import check_gpu_determinism
from ecg_jax.results import replace_rows
from ecg_jax.train import checkpoints, sharding
from ecg_jax.train.device_data import abstract_member_consts, split_arrays, window_arrays
from ecg_jax.train.engine import MemberState, learning_rate_at
from ecg_jax.train.experiment import CPU_MEMBERS_PER_DEVICE, MEMORY_FRACTION, Experiment, chunks_of, read_layout
from ecg_jax.train.program import TrainProgram, device_memory_bytes
from ecg_jax.train.progress import MetricsLog, RunProgress, TensorBoardLog, epoch_row
from ecg_jax.train.scoring import EvalProgram, score_chunk, write_examples
from ecg_jax.workdir import bytes_under, claimed, pin_data_source, require_data

is_main_process, log = sharding.is_main_process, sharding.log


def _read_json(path: str):
    """A file training writes (data_card.json, the model source record) as it stands, for "never rewritten
    unchanged"; None when missing or damaged: training rewrites it whole from what it just computed."""
    if not os.path.exists(path):
        return None
    try:
        return read_json_file(path, hint="rewriting it from this run")
    except DataError as e:
        log(str(e))
        return None


def check_workdir_config(config: ml_collections.ConfigDict, workdir: str) -> None:
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return
    saved = json.loads(config_to_json(pin_data_source(load_config_json(path), workdir)))
    new = json.loads(config_to_json(config))
    diffs = [f"{path}: workdir has {a!r}, now {b!r}"
             for path, a, b in config_differences(saved, new, RESUMABLE_CHANGES)]
    if diffs:
        raise CheckpointError(f"{workdir} was made with a different config: " + "; ".join(diffs)
                              + ". Resume with --workdir alone, or use a fresh workdir.")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       on_epoch_end: Callable[[int, int], None] | None = None,
                       allow_changed_model_source: bool = False, set_aside_damaged: bool = False) -> list[dict]:
    """Train every member of `config` (resuming if possible), evaluate, return result rows.

    `on_epoch_end(chunk, epoch)` is a test hook called after each finished
    (and, when due, checkpointed) epoch; raising from it simulates a kill.
    An external network (`config.model` a spec, ecg_jax/models/external.py) is
    checked against the contract and, on a resume, against the source the
    workdir recorded (`allow_changed_model_source` accepts a changed file)
    before anything is written. `set_aside_damaged` (train's --set_aside_damaged_checkpoints): go on when
    several checkpoints in a row cannot be read, setting them all aside (checkpoints.restore_latest_intact).
    """
    config = resolve_config(config)
    check_trainable(config)
    config = pin_data_source(config, workdir if os.path.isdir(workdir) else None)
    check_gpu_determinism(bool(config.train.get("gpu_deterministic", False)))   # set by the entry point
    require_data(config, workdir)
    check_workdir_config(config, workdir)
    checkpoints.check_epochs_not_behind(workdir, int(config.train.epochs))   # config.json agrees with them
    read_layout(workdir)   # a damaged members.json: one line now, not after the data are prepared
    main = is_main_process()
    source = None
    if not is_builtin(config.model):
        source = check_recorded_source(config.model, workdir, allow_changed_model_source) \
            or model_source(config.model)
    experiment = Experiment.from_config(config)
    check_model(config.model, experiment.model, int(config.data.window))
    with interrupts.resume_hint(f"rerun `python scripts/train.py --workdir {workdir}` to resume"), \
            claimed(workdir, checkpoint_bytes(experiment) if main else 0,
                    written_bytes=written_checkpoint_bytes(workdir) if main else 0):
        return _train_and_evaluate(experiment, workdir, main, on_epoch_end, source, set_aside_damaged)


def checkpoint_bytes(experiment: Experiment) -> int:
    """What a run's checkpoints need on disk: parameters + two Adam moments per member, kept checkpoints + 1."""
    keep = int(experiment.config.train.keep_checkpoints or 1)
    return 3 * 4 * experiment.n_params() * len(experiment.members) * (keep + 1)


def written_checkpoint_bytes(workdir: str) -> int:
    """What of `checkpoint_bytes` a resumed run has on disk already (damaged steps set aside excluded)."""
    return bytes_under(os.path.join(workdir, "checkpoints"), skip=("damaged",))


@dataclasses.dataclass
class _Run:
    """What every chunk of one training run shares, built once by `_train_and_evaluate`."""

    experiment: Experiment
    program: TrainProgram
    evaluator: EvalProgram
    prepared: object                     # data.PreparedData
    train_data: object                   # the replicated device arrays (device_data.split_arrays)
    test_data: object
    workdir: str
    main: bool                           # process 0: the one that writes logs and results
    metrics_log: MetricsLog | None
    tensorboard: TensorBoardLog | None
    progress: RunProgress | None
    on_epoch_end: Callable[[int, int], None] | None
    validation_data: object = None       # the held-out training records' windows (data/validation.py)
    set_aside_damaged: bool = False      # several unreadable checkpoints in a row: set aside, go on


def _train_and_evaluate(experiment: Experiment, workdir: str, main: bool, on_epoch_end,
                        source: dict | None = None, set_aside_damaged: bool = False) -> list[dict]:
    config = experiment.config
    tic = time.perf_counter()
    held = hold_out_validation(prepare_data(config), config)
    prepared = held.prepared
    log(f"data: {prepared.source}, {prepared.n_train} train / {prepared.n_test} test windows"
        + (f" / {len(held.validation)} validation windows of {len(held.records)} held-out training records"
           if held.validation is not None else "") + f" ({time.perf_counter() - tic:.1f}s)")
    experiment = experiment.with_train_windows(prepared.n_train)
    if main:
        card = {**data_card(prepared, config), **held.card_fields()}
        # A pure derived file, safe to rebuild (issue 30 review): every field is computed from the config
        # and the prepared data (sizes, per-dataset statistics, the cache key), none from an earlier run,
        # so a damaged card is rebuilt, said in one WARNING line (_read_json), never refused.
        if _read_json(os.path.join(workdir, "data_card.json")) != card:   # never rewritten unchanged
            write_data_card(card, workdir)
        save_config(config, os.path.join(workdir, "config.json"))
        if source is not None and _read_json(os.path.join(workdir, SOURCE_RECORD)) != source:
            write_text_atomic(os.path.join(workdir, SOURCE_RECORD), json.dumps(source, indent=1) + "\n")
    if prepared.source == "synthetic":
        log("NOTE: training on the built-in SYNTHETIC ECG/noise source (no PhysioNet data configured)")

    mesh, settings = experiment.mesh, experiment.settings
    train_data = sharding.put_replicated(split_arrays(prepared, "train", experiment.segment_keys(prepared)), mesh)
    test_data = sharding.put_replicated(split_arrays(prepared, "test", experiment.segment_keys(prepared)), mesh)
    validation_data = None if held.validation is None else sharding.put_replicated(
        window_arrays(held.validation, experiment.segment_keys(prepared)), mesh)

    def program_for(shapes: int) -> TrainProgram:
        return TrainProgram(experiment.model, settings, mesh, experiment.loop, shapes)

    # The probe may lower several candidate chunk shapes while planning.
    chunk_size, memory = members_per_program(experiment, workdir, program_for(16), train_data)
    if jax.process_count() > 1:   # every process must build the same programs: process 0's plan decides
        chunk_size = int(multihost_utils.broadcast_one_to_all(np.int32(chunk_size)))
    chunks = chunks_of(experiment, chunk_size)
    if main:
        write_text_atomic(os.path.join(workdir, "members.json"), json.dumps({
            "members_per_program": chunk_size, "member_parallelism": settings.member_parallelism,
            "loop": experiment.loop, "processes": jax.process_count(),
            "devices": [str(d) for d in jax.devices()], "memory": memory,
            "chunks": [[m.to_json() for m in c] for c in chunks]}, indent=1) + "\n")
    n_members = len(experiment.members)
    n_points = len({m.point for m in experiment.members})
    log(f"{experiment.method}: {n_members} members ({config.seeds} seeds x "
        + (f"{n_points} sweep points x " if n_points > 1 else "")
        + f"{n_members // config.seeds // n_points} datasets) in {len(chunks)} program(s) of {chunk_size}, "
        f"member_parallelism={settings.member_parallelism}, "
        f"loop={experiment.loop}, {experiment.n_devices} device(s) in {jax.process_count()} process(es) "
        f"[{jax.default_backend()}], {experiment.n_params():,} parameters each")

    n_shapes = len({experiment.padded(c) for c in chunks})
    run = _Run(
        # test and validation windows are two data shapes of the one evaluation program
        experiment, program_for(n_shapes),
        EvalProgram.for_experiment(experiment, max_shapes=n_shapes * (1 if validation_data is None else 2)),
        prepared, train_data, test_data, workdir, main,
        metrics_log=MetricsLog(os.path.join(workdir, "metrics.jsonl")) if main else None,
        tensorboard=TensorBoardLog(os.path.join(workdir, "tensorboard")) if main and config.train.tensorboard else None,
        progress=RunProgress(n_members * settings.steps_per_epoch * int(config.train.epochs)) if main else None,
        on_epoch_end=on_epoch_end, validation_data=validation_data, set_aside_damaged=set_aside_damaged)
    rows, examples = [], {}
    try:
        for ci, chunk in enumerate(chunks):
            r, e = _train_chunk(run, ci, chunk)
            rows += r
            examples.update(e)
            if main and ci + 1 < len(chunks):   # a later fault (full disk, Ctrl-C) keeps this chunk's results
                replace_rows(os.path.join(workdir, "results.jsonl"), r)
    finally:
        if run.progress is not None:
            run.progress.close()

    if main:
        # the epoch its rows are scored at (check_epochs_not_behind: never past train.epochs)
        write_examples(workdir, prepared, experiment.members, examples, epochs=int(config.train.epochs))
        replace_rows(os.path.join(workdir, "results.jsonl"), rows)
    return rows


def _train_chunk(run: _Run, ci: int, chunk: list) -> tuple[list[dict], dict]:
    """Train (or resume) chunk `ci` of members and score it: (result rows, example outputs)."""
    experiment, workdir, main = run.experiment, run.workdir, run.main
    config, mesh = experiment.config, experiment.mesh
    n, n_pad = len(chunk), experiment.padded(chunk)
    if n_pad != n:
        log(f"chunk {ci}: padding {n} members to {n_pad} (a multiple of {experiment.n_devices} "
            f"devices) with copies of the first member; their results are discarded")
    consts = experiment.chunk_consts(run.prepared, chunk)
    directory = checkpoints.chunk_dir(workdir, ci)
    fingerprint = experiment.fingerprint(chunk)
    if main:   # before any process of this chunk saves: nothing is writing there now
        checkpoints.remove_unfinished_step(directory)
    start, state = checkpoints.restore_latest_intact(directory, experiment.abstract_state(1), n, mesh,
                                                      fingerprint, move_damaged=main, warn=log,
                                                      set_aside_all=run.set_aside_damaged)
    mgr = checkpoints.manager(directory, keep=config.train.keep_checkpoints)
    if state is not None:
        if start < config.train.epochs:
            log(f"chunk {ci}: resuming from the checkpoint after epoch {start}")
    else:
        start = 0
        tic = time.perf_counter()
        state = jax.block_until_ready(run.program.init(experiment.chunk_seeds(chunk)))
        log(f"chunk {ci}: initialised {n} members ({time.perf_counter() - tic:.1f}s, compile included)")
    if run.metrics_log is not None:
        run.metrics_log.truncate_after(ci, start)
    if run.progress is not None:
        run.progress.skip(start * n * experiment.settings.steps_per_epoch)
    state = _run_epochs(run, ci, chunk, state, consts, mgr, fingerprint, start)

    # The epoch the state is at: a checkpoint past train.epochs (a run resumed with fewer) is scored as it is.
    return score_chunk(experiment, run.prepared, chunk, state, consts, run.test_data, run.evaluator,
                       {"epochs": max(int(start), int(config.train.epochs))}, run.validation_data)


def members_per_program(experiment: Experiment, workdir: str, probe: TrainProgram,
                        train_data) -> tuple[int, dict]:
    """Members per program: the config's, the one recorded in the workdir, or planned from memory.

    The plan compiles the training program for a candidate chunk and reads
    XLA's memory analysis of it (per device: arguments + outputs - donated +
    temporaries) against the device's memory. On accelerators it starts from
    all members at once and shrinks until the program fits in
    `MEMORY_FRACTION` of the memory; on CPU each device trains
    `CPU_MEMBERS_PER_DEVICE` member(s) at a time (speed, not memory, decides
    there; experiment.py).
    """
    n, d = len(experiment.members), experiment.n_devices
    fixed = int(experiment.config.train.max_members_per_program)
    layout = read_layout(workdir)
    if fixed > 0:
        return fixed, {"planned_by": "train.max_members_per_program"}
    if layout is not None:  # keep the chunk layout of the checkpoints we may resume
        return int(layout["members_per_program"]), layout.get("memory", {})
    limit = device_memory_bytes()
    if jax.default_backend() == "cpu":
        # Speed decides on CPU, not memory: no extra compile just to measure it.
        return min(n, CPU_MEMBERS_PER_DEVICE * d), {"planned_by": "cpu: one member per device",
                                                    "members_per_device": CPU_MEMBERS_PER_DEVICE,
                                                    "device_memory_bytes": limit}
    data = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), train_data)

    def measure(m: int) -> dict:
        consts = abstract_member_consts(m, train_data.noise.shape[0], train_data.clean.shape[-1],
                                        experiment.n_decays)
        return probe.memory_analysis(experiment.abstract_state(m), consts, data)

    return plan_members_per_program(n, d, limit, measure)


def plan_members_per_program(n: int, d: int, limit: int, measure: Callable[[int], dict]) -> tuple[int, dict]:
    """The accelerator plan: the most members per program (a multiple of `d` devices) that fit.

    `measure(m)` is the per-device memory analysis of the program for `m`
    members (`compiled_memory`'s dict). Starts from all `n` members at once and
    shrinks, in proportion to the overshoot, until the peak is within
    `MEMORY_FRACTION` of `limit` bytes; one member per device that does not fit
    is a ConfigError, before anything is trained. An analysis without a peak
    (a backend that gives none) keeps the candidate.
    """
    budget = MEMORY_FRACTION * limit
    per_device = -(-n // d)
    while True:
        analysis = measure(per_device * d)
        peak = analysis["peak_bytes"]
        if peak is None or peak <= budget:
            break
        if per_device == 1:
            raise ConfigError(
                f"one member per device needs {peak / 2**30:.2f} GiB, more than {MEMORY_FRACTION:.0%} of the "
                f"device's {limit / 2**30:.2f} GiB: use a smaller train.batch_size or data.window, or set "
                "train.max_members_per_program to skip this check")
        per_device = max(1, min(per_device - 1, int(per_device * budget / peak)))
    return min(n, per_device * d), {"planned_by": "memory_analysis",
                                    "members_per_device": per_device, "device_memory_bytes": limit,
                                    "memory_fraction": MEMORY_FRACTION, **analysis}


def _run_epochs(run: _Run, ci: int, chunk: list, state: MemberState, consts, mgr, fingerprint: dict,
                start: int) -> MemberState:
    """Epochs `start`..train.epochs of chunk `ci`: compiled epochs, logs, divergence reports, checkpoints."""
    experiment, metrics_log, progress = run.experiment, run.metrics_log, run.progress
    n = len(chunk)
    t, s = experiment.config.train, experiment.settings
    hypers = [experiment.member_hyper(m) for m in chunk]
    was_diverged = sharding.to_host(state.diverged)[:n]   # diverged before a resumed checkpoint: said then
    saved = start
    interrupts.note_progress(f"after epoch {start} of chunk {ci} (its checkpoint)" if start
                             else f"in the first epoch of chunk {ci} (no checkpoint yet)")
    for e in range(start, t.epochs):
        tic = time.perf_counter()
        state, losses = run.program.epoch(state, consts, run.train_data)
        # The one host round-trip of an epoch: losses (members, steps) and divergence flags.
        losses, diverged = sharding.to_host((losses, state.diverged))
        losses, diverged = losses[:n], diverged[:n]
        seconds = time.perf_counter() - tic
        for j in np.flatnonzero(diverged & ~was_diverged):
            m = chunk[j]
            log(f"WARNING: member {m.index} (seed {m.seed}, {m.dataset.noise_type} {m.dataset.snr_db:g} dB) "
                f"diverged (non-finite loss or parameters) in epoch {e + 1}; frozen at its last finite state")
        was_diverged = diverged
        epoch_loss = np.where(diverged, np.nan, losses.mean(axis=1))
        # The rate the optimizer used in this epoch (a list, one per member, when a sweep varies it).
        rates = [float(learning_rate_at(h, e * s.steps_per_epoch)) for h in hypers]
        lr = rates[0] if len(set(rates)) == 1 else rates
        if metrics_log is not None:
            row = epoch_row(ci, e + 1, [m.index for m in chunk], epoch_loss, diverged, lr, seconds)
            metrics_log.append(row)
            if run.tensorboard is not None:
                run.tensorboard.log_epoch(row)
        if progress is not None:
            progress.update(f"chunk {ci}", e + 1, t.epochs, s.steps_per_epoch * n, epoch_loss, seconds)
        due = (e + 1) % t.checkpoint_every == 0 or e + 1 == t.epochs
        saved = e + 1 if due else saved
        # Said before the save: a signal during it is acted on only once the step is on disk.
        interrupts.note_progress(f"after epoch {e + 1} of chunk {ci}" +
                                 (f" (checkpoint after epoch {saved})" if saved else " (no checkpoint yet)"))
        if due:
            checkpoints.save(mgr, e + 1, state, fingerprint)
        if run.on_epoch_end is not None:
            run.on_epoch_end(ci, e + 1)
    return state
