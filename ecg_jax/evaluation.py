"""Score a workdir's members from their checkpoints (scripts/evaluate.py), or restore one for inference.

Training and `evaluate_workdir` both go through `score_chunk`
(ecg_jax/train/scoring.py), so a restored checkpoint gives exactly the
numbers the training process reported.
`restore_member` loads one member on its own for inference on new signals.
"""

from __future__ import annotations

import os
from typing import Sequence

import jax
import ml_collections
import numpy as np

from ecg_jax import interrupts
from ecg_jax.config_utils import load_config_json, read_json_file, resolve_config
from ecg_jax.data import prepare_data
from ecg_jax.data.validation import hold_out_validation
from ecg_jax.errors import CheckpointError
from ecg_jax.models import is_builtin
from ecg_jax.models.external import check_recorded_source
from ecg_jax.results import replace_rows
from ecg_jax.train import checkpoints, sharding
from ecg_jax.train.device_data import split_arrays, window_arrays
from ecg_jax.train.engine import MemberState
from ecg_jax.train.experiment import Experiment, workdir_chunks
from ecg_jax.train.members import Member
from ecg_jax.train.scoring import EvalProgram, score_chunk, write_examples
from ecg_jax.workdir import claimed, pin_data_source, require_data

log = sharding.log


def load_workdir_config(workdir: str, data_dir: str | None = None,
                        allow_changed_model_source: bool = False) -> ml_collections.ConfigDict:
    """A workdir's resolved config, its data pinned; an external network's source checked against the
    one the workdir recorded (ConfigError if it changed, unless `allow_changed_model_source`)."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise CheckpointError(f"{workdir} is not a training workdir: no config.json there")
    config = load_config_json(path)
    if data_dir:
        config.data.data_dir = data_dir
    config = pin_data_source(resolve_config(config), workdir)
    require_data(config, workdir)
    if not is_builtin(config.model):
        check_recorded_source(config.model, workdir, allow_changed_model_source)
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
                     write: bool = True, allow_changed_model_source: bool = False) -> list[dict]:
    """Restore every program's checkpoint (latest, or after `epoch`) and score all members.

    With `write`, the rows replace the workdir's rows of the same runs and epoch
    in results.jsonl, and (for the latest checkpoint only) examples.npz is
    rewritten; the workdir is locked against a concurrent run meanwhile.
    """
    config = load_workdir_config(workdir, data_dir, allow_changed_model_source)
    again = f"python scripts/evaluate.py --workdir {workdir}" + (f" --epoch {epoch}" if epoch is not None else "")
    with interrupts.resume_hint(f"rerun `{again}`"), claimed(workdir, write=write):
        return _evaluate_workdir(workdir, config, epoch, write and jax.process_index() == 0)


def _evaluate_workdir(workdir: str, config, epoch: int | None, write: bool) -> list[dict]:
    held = hold_out_validation(prepare_data(config), config)   # as training split it
    prepared = held.prepared
    experiment = Experiment.from_config(config, prepared.n_train)
    evaluator = EvalProgram.for_experiment(experiment, max_shapes=1 if held.validation is None else 2)
    test_data = sharding.put_replicated(split_arrays(prepared, "test", experiment.segment_keys(prepared)),
                                        experiment.mesh)
    validation_data = None if held.validation is None else sharding.put_replicated(
        window_arrays(held.validation, experiment.segment_keys(prepared)), experiment.mesh)
    rows, examples, older = [], {}, []
    chunks = workdir_chunks(workdir, experiment)
    for ci, chunk in enumerate(chunks):
        interrupts.note_progress(f"while scoring chunk {ci} of {len(chunks)} (results.jsonl not changed yet)")
        step, state = restore_chunk(experiment, workdir, ci, chunk, epoch)
        newest = checkpoints.newest_epoch_on_disk(workdir, ci)
        if newest is not None and step != newest:   # the newest is damaged: an older one was scored
            older.append(f"chunk {ci} at epoch {step}, its newest checkpoint (epoch {newest}) being damaged")
        log(f"chunk {ci}: restored the checkpoint after epoch {step} ({len(chunk)} members)")
        consts = experiment.chunk_consts(prepared, chunk)
        r, e = score_chunk(experiment, prepared, chunk, state, consts, test_data, evaluator, {"epochs": int(step)},
                           validation_data)
        rows += r
        examples.update(e)
    if write:
        # The figures show the final models, as the tables do (each run at its newest scored epoch); an
        # older epoch, asked for or fallen back to past a damaged newest checkpoint, leaves them alone.
        if epoch is None and not older:
            write_examples(workdir, prepared, [m for c in chunks for m in c], examples, epochs=int(step))
        elif epoch is None:
            log(f"examples.npz left as it was (the tables show the newest epoch): scored {'; '.join(older)}")
        replace_rows(os.path.join(workdir, "results.jsonl"), rows)
    return rows


def restore_member(workdir: str, index: int, epoch: int | None = None) -> dict:
    """One member on its own, for inference: its network, variables and normalisation.

    Returns {"model", "variables", "mean", "std", "member", "epoch"}; denoise a
    (B, L, 2) mV array with `ecg_jax.normalization.apply_in_mv`:
      out = apply_in_mv(model, variables, x, mean, std)
          = model.apply(variables, (x - mean) / std, train=False) * std + mean
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
    card = read_json_file(os.path.join(workdir, "data_card.json"))
    member = members[index]
    stats = next(s for s in card["normalization"]
                 if s["noise_type"] == member.dataset.noise_type and float(s["snr_db"]) == float(member.dataset.snr_db))
    return {"model": experiment.model, "variables": variables, "mean": np.asarray(stats["mean"], np.float32),
            "std": np.asarray(stats["std"], np.float32), "member": member, "epoch": step}
