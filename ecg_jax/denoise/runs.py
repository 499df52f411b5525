"""Members of a training workdir, restored for inference and stacked along a member axis."""

from __future__ import annotations

import dataclasses
import os

import flax.linen as nn
import numpy as np

from ecg_jax.config_utils import read_json_file
from ecg_jax.denoise.weights import stack_variables
from ecg_jax.errors import CheckpointError, EcgJaxError


@dataclasses.dataclass
class RestoredMembers:
    model: nn.Module
    variables: dict            # stacked: leading member axis K
    mean: np.ndarray           # (K, 2) mV
    std: np.ndarray            # (K, 2) mV
    members: list[dict]        # index, seed, noise_type, snr_db, epoch of each
    config: object             # the run's resolved ml_collections config


def dataset_label(noise_type: str, snr_db: float) -> str:
    """"emb@0", "mixed@0", "bw@-2.5": how a dataset is named to --dataset."""
    return f"{noise_type}@{float(snr_db):g}"


def parse_dataset(text: str, error=EcgJaxError) -> tuple[str, float]:
    """"NOISE@SNR" (e.g. "emb@0", "bw@-4") -> ("emb", 0.0)."""
    noise, sep, snr = str(text).strip().partition("@")
    try:
        value = float(snr)
    except ValueError:
        value = float("nan")
    if not sep or not noise.strip() or not np.isfinite(value):
        raise error(f"--dataset must be NOISE@SNR (e.g. emb@0 or bw@-4), got {text!r}")
    return noise.strip().lower(), value


def select_members(count: int, datasets: list[tuple[str, float]] | None, member: str | int = "all",
                   dataset: str | None = None, where: str = "the run", error=EcgJaxError) -> list[int]:
    """Indices of the members to use out of `count`, given each one's (noise type, SNR).

    `member`: "all" (a seed ensemble) or one member index (of the whole run or file);
    `dataset`: "NOISE@SNR", keeping only that dataset's members. "all" must be a seed
    ensemble of ONE dataset: members trained on different datasets are different
    models with different normalisations, so averaging them is refused with a line
    naming the datasets. `datasets` None: unknown (the members count as one dataset).
    """
    labels = [dataset_label(n, s) for n, s in datasets] if datasets is not None else None
    pool = list(range(count))
    if dataset is not None and str(dataset).strip():
        noise, snr = parse_dataset(dataset, error)
        if labels is None:
            raise error(f"{where} does not say which dataset its members were trained on: drop --dataset")
        pool = [i for i, (n, s) in enumerate(datasets) if n.lower() == noise and abs(float(s) - snr) < 1e-9]
        if not pool:
            raise error(f"{where} has no members trained on {dataset_label(noise, snr)}; its datasets: "
                        f"{', '.join(dict.fromkeys(labels))}")
    if str(member).strip().lower() == "all":
        spanned = list(dict.fromkeys(labels[i] for i in pool)) if labels is not None else []
        if len(spanned) > 1:
            raise error(f"{where} holds members of {len(spanned)} datasets ({', '.join(spanned)}) with different "
                        f"normalisations, and 'all' averages a seed ensemble of one dataset: choose one with "
                        f"--dataset NOISE@SNR (e.g. --dataset {spanned[0]}) or one member with --member N")
        return pool
    try:
        index = int(member)
    except (TypeError, ValueError):
        raise error(f"--member must be a member index or 'all', got {member!r}") from None
    if not 0 <= index < count:
        raise error(f"member {index} does not exist: {where} has members 0..{count - 1}")
    if index not in pool:
        raise error(f"member {index} was trained on {labels[index]}, not on {dataset}; members of that dataset: "
                    f"{', '.join(str(i) for i in pool)}")
    return [index]


def member_indices(config, member: str | int, dataset: str | None = None, where: str = "the run") -> list[int]:
    """"all" -> every member of the run (of `dataset` when given; refused if they span several
    datasets); an int (or its string) -> that one, checked."""
    # lazy: ecg_jax.train needs ml_collections, which loading a weights file (ecg_jax.denoise) does not import
    from ecg_jax.train.members import members_of

    datasets = [(m.dataset.noise_type, float(m.dataset.snr_db)) for m in members_of(config)]
    return select_members(len(datasets), datasets, member, dataset, where=where, error=CheckpointError)


def restore_members(workdir: str, member: str | int = "all", epoch: int | None = None,
                    dataset: str | None = None, allow_changed_model_source: bool = False) -> RestoredMembers:
    # lazy: the training code (orbax, optax, the data pipeline) is imported only to restore a workdir
    from ecg_jax.evaluation import load_workdir_config, restore_member

    config = load_workdir_config(workdir, allow_changed_model_source=allow_changed_model_source)
    indices = member_indices(config, member, dataset, where=workdir)
    restored = [restore_member(workdir, i, epoch) for i in indices]
    return RestoredMembers(
        model=restored[0]["model"],
        variables=stack_variables([r["variables"] for r in restored]),
        mean=np.stack([r["mean"] for r in restored]).astype(np.float32),
        std=np.stack([r["std"] for r in restored]).astype(np.float32),
        members=[{**r["member"].to_json(), "epoch": int(r["epoch"])} for r in restored],
        config=config)


def read_data_card(workdir: str) -> dict:
    path = os.path.join(workdir, "data_card.json")
    if not os.path.exists(path):
        return {}
    return read_json_file(path)
