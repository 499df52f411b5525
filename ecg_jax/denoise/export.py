"""A training workdir -> a portable weights file plus a JSON model card next to it.

The card says what the weights are (network, options, parameter count),
how to feed them (normalisation rule and values), what they were trained on
(source, protocol revision, split, records, noise types, SNR levels, windows),
how (epochs, batch size, learning rate schedule, seeds), and how well the
exported denoiser (the members' mean when several) does on the run's own test
windows for every (noise type, SNR) of the run: mean output SNR (dB) and
RMSE (mV).
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax.numpy as jnp
import numpy as np

from ecg_jax.atomic import write_text_atomic
from ecg_jax.config_utils import MIXED_NOISE, NOISE_TYPES
from ecg_jax.denoise.core import CHANNELS, WINDOW, Denoiser, ensemble_window_fn
from ecg_jax.denoise.resampling import MODEL_FS
from ecg_jax.denoise.runs import read_data_card, restore_members
from ecg_jax.denoise.weights import NORMALIZATION_RULE, WeightsError, member_variables, save_weights, stack_variables
from ecg_jax.metrics import window_metrics
from ecg_jax.models import count_params, display_name_of, model_source

# data_card.json fields copied into the weights' meta and the card.
_DATA_CARD_FIELDS = ("source", "source_note", "split", "records", "train_records", "test_records", "data_seed",
                     "n_windows", "n_train", "n_test", "train_fraction", "window", "fs", "cache_key")


def card_path(weights_path: str) -> str:
    return os.path.splitext(weights_path)[0] + ".json"


def _plain(value: Any) -> Any:
    """ml_collections / tuples -> JSON-able values."""
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def build_meta(config, data_card: dict, members: list[dict]) -> dict:
    """The weights file's self-description (also the core of the model card)."""
    data = config.data
    training_data = {k: data_card[k] for k in _DATA_CARD_FIELDS if k in data_card}
    training_data.update({
        "source": data_card.get("source", data.source), "revision": data.revision, "split": data.split,
        "emb_mixing": data.emb_mixing, "noise_types": list(config.noise_types),
        "snr_levels": [float(s) for s in config.snr_levels], "config_records": list(data.records),
    })
    t = config.train
    recipe = {"epochs": int(t.epochs), "batch_size": int(t.batch_size), "learning_rate": float(t.learning_rate),
              "lr_decay_epoch": _plain(t.lr_decay_epoch), "lr_decay_factor": _plain(t.lr_decay_factor),
              "seeds": int(config.seeds), "seed_offset": int(config.seed_offset),
              "epochs_of_exported_checkpoints": sorted({m["epoch"] for m in members})}
    meta = {"network": config.model, "options": _plain(config.model_kwargs), "fs": MODEL_FS, "window": WINDOW,
            "channels": CHANNELS, "experiment": config.experiment, "training_data": training_data,
            "recipe": recipe, "members": members}
    source = model_source(config.model)
    if source is not None:
        # your own network: how to rebuild it (spec, file or module, class, sha256 of the source), so that
        # loading the weights finds the file and says when it changed since (denoise.weights.load_weights)
        meta["model_source"] = source
        meta["network_label"] = display_name_of(config.model)
    return meta


def scored_noise_types(config) -> tuple[str, ...]:
    """The noise types a model card scores: the run's own, or all four for the training mixture."""
    return NOISE_TYPES if tuple(config.noise_types) == (MIXED_NOISE,) else tuple(config.noise_types)


def score_denoiser(denoiser: Denoiser, prepared, noise_types, snr_levels) -> list[dict]:
    """Mean output SNR (dB) and RMSE (mV) of `denoiser` on the test windows of every dataset."""
    clean = np.asarray(prepared.test.clean, np.float32)
    rows = []
    for noise_type in noise_types:
        for snr in snr_levels:
            noisy = np.asarray(prepared.test.noisy(noise_type, float(snr)), np.float32)
            denoised = denoiser.run_windows(noisy)
            m = window_metrics(jnp.asarray(clean), jnp.asarray(denoised), jnp.asarray(noisy))
            rows.append({"noise_type": noise_type, "snr_db": float(snr), "n_windows": int(len(clean)),
                         "output_snr_db": float(jnp.mean(m["snr_db"])), "rmse_mv": float(jnp.mean(m["rmse"])),
                         "snr_improvement_db": float(jnp.mean(m["snr_improvement_db"]))})
    return rows


def export_workdir(workdir: str, output: str, member: str | int = "all", epoch: int | None = None,
                   score: bool = True, score_members: bool = False, overwrite: bool = False,
                   note: str = "", dataset: str | None = None, allow_changed_model_source: bool = False) -> dict:
    """Write `output` (.npz weights) and its model card (same stem, .json); returns the card.

    `member`: "all" (every member: a seed ensemble) or one index. `dataset`: "NOISE@SNR"
    (e.g. "emb@0"), only that dataset's members; "all" over a run whose members span
    several datasets is refused (they are not a seed ensemble). `allow_changed_model_source`: export
    your own network although its file changed since training. `score`: add the
    test-window scores of the exported denoiser; `score_members`: also each member's own.
    """
    if not output.endswith(".npz"):
        raise WeightsError(f"{output}: a weights file must end in .npz")
    card_file = card_path(output)
    for path in (output, card_file):
        if os.path.exists(path) and not overwrite:
            raise WeightsError(f"{path} exists; refusing to overwrite it (pass overwrite=True or choose another name)")
    restored = restore_members(workdir, member, epoch, dataset=dataset,
                               allow_changed_model_source=allow_changed_model_source)
    config = restored.config
    meta = build_meta(config, read_data_card(workdir), restored.members)
    meta["exported_from"] = {"workdir": os.path.abspath(workdir), "member": str(member), "epoch": epoch,
                           **({"dataset": str(dataset)} if dataset else {})}
    card = {
        "network": meta["network"], "options": meta["options"],
        **{k: meta[k] for k in ("network_label", "model_source") if k in meta},
        "parameter_count": count_params(member_variables(restored.variables, 0)["params"]),
        "members_count": len(restored.members),
        "ensemble": "the members' outputs are averaged" if len(restored.members) > 1 else "single member",
        "input": {"fs": MODEL_FS, "window": WINDOW, "channels": CHANNELS, "units": "mV"},
        "normalization": {"rule": NORMALIZATION_RULE, "mean_mv": restored.mean.tolist(),
                          "std_mv": restored.std.tolist()},
        "training_data": meta["training_data"], "recipe": meta["recipe"], "members": restored.members,
        "weights_file": os.path.basename(output),
        **({"note": note} if note else {}),
    }
    if score:
        # lazy: ecg_jax.data pulls in wfdb and pandas, needed only to score the export
        from ecg_jax.data import prepare_data

        prepared = prepare_data(config)
        denoiser = Denoiser.from_variables(restored.model, restored.variables, restored.mean, restored.std)
        card["scores"] = {"split": "test windows of the run", "n_train": int(prepared.n_train),
                          "rows": score_denoiser(denoiser, prepared, scored_noise_types(config), config.snr_levels)}
        if score_members and len(restored.members) > 1:
            card["member_scores"] = []
            for k, m in enumerate(restored.members):
                one = Denoiser(ensemble_window_fn(restored.model,
                                                  stack_variables([member_variables(restored.variables, k)]),
                                                  restored.mean[k:k + 1], restored.std[k:k + 1]))
                card["member_scores"].append({"member": m, "rows": score_denoiser(
                    one, prepared, scored_noise_types(config), config.snr_levels)})
    meta["card"] = {k: card[k] for k in ("parameter_count", "scores") if k in card}
    save_weights(output, restored.variables, restored.mean, restored.std, meta, overwrite=overwrite)
    write_text_atomic(card_file, json.dumps(card, indent=2) + "\n")
    return card
