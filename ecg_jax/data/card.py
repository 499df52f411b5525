"""prepared data -> data card: what every table's data was, as JSON, and its summary lines.

The card names the source (loudly when synthetic), the revision, split,
emb mixing, records, sizes, every dataset's normalisation statistics and
achieved input SNR, and the cache file.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

import ml_collections
import numpy as np

from ecg_jax.config_utils import dataset_grid, resolve_config, write_text_atomic
from ecg_jax.data.prepared import PreparedData
from ecg_jax.data.synthetic import SYNTHETIC_SOURCE_NOTE

DATA_CARD_NAME = "data_card.json"


def _finite_mean(x: np.ndarray) -> float:
    finite = x[np.isfinite(x)]
    return float(np.mean(finite, dtype=np.float64)) if finite.size else float("nan")


def dataset_summaries(prepared: PreparedData, noise_type: str,
                      snr_levels: list[float]) -> list[dict[str, Any]]:
    """Achieved input SNR (train/test) and normalisation statistics of each dataset."""
    out = []
    for snr_db in snr_levels:
        per_window, mean, std = prepared.dataset_stats(noise_type, snr_db)
        snr_train, snr_test = per_window[:prepared.n_train], per_window[prepared.n_train:]
        finite = per_window[np.isfinite(per_window)]
        out.append({
            "noise_type": noise_type, "snr_db": snr_db,
            "input_snr_train_db": _finite_mean(snr_train), "input_snr_test_db": _finite_mean(snr_test),
            "input_snr_max_abs_error_db": float(np.max(np.abs(finite - snr_db))) if finite.size else None,
            "windows_without_finite_snr": int(per_window.size - finite.size),
            "mean": mean.tolist(), "std": std.tolist(),
        })
    return out


def data_card(prepared: PreparedData, config: ml_collections.ConfigDict) -> dict[str, Any]:
    """A JSON-able description of the data behind every table: source, split, sizes,
    per-dataset normalisation and achieved input SNR."""
    config = resolve_config(config)
    data = config.data
    summaries = [s for t, snr in dataset_grid(config) for s in dataset_summaries(prepared, t, [snr])]
    card: dict[str, Any] = {"source": prepared.source}
    if prepared.source == "synthetic":
        card["source_note"] = SYNTHETIC_SOURCE_NOTE
        card["synthetic_records"] = int(data.synthetic_records)
        card["synthetic_samples"] = int(data.synthetic_samples)
    card.update({
        "records": list(prepared.record_names),
        "revision": prepared.revision, "emb_mixing": prepared.emb_mixing,
        "split": prepared.split,
        "data_seed": int(data.data_seed), "window": int(data.window), "fs": float(data.fs),
        "n_windows": prepared.n_windows, "n_train": prepared.n_train, "n_test": prepared.n_test,
        "train_fraction": float(data.train_fraction),
        "windows_per_record_divisor": int(data.windows_per_record_divisor),
        "pool_size": prepared.pool_size,
        "noise_types": list(config.noise_types), "snr_levels": list(config.snr_levels),
        "normalization": [{k: s[k] for k in ("noise_type", "snr_db", "mean", "std")} for s in summaries],
        "datasets": [{k: v for k, v in s.items() if k not in ("mean", "std")} for s in summaries],
        "data_dir": prepared.data_dir, "cache_key": prepared.cache_key,
    })
    if prepared.split == "inter_patient":
        card["train_records"] = list(prepared.train_records)
        card["test_records"] = list(prepared.test_records)
    return card


def write_data_card(card: Mapping[str, Any], workdir: str) -> str:
    """Write <workdir>/data_card.json atomically; returns its path."""
    path = os.path.join(workdir, DATA_CARD_NAME)
    write_text_atomic(path, json.dumps(card, indent=2) + "\n")
    return path


# ------------------------------------------------------------ summary

SNR_TOLERANCE_DB = 0.01


def _db(x: float) -> str:
    """4 decimals, without the "-0.0000" that a -1e-8 dB rounding residue would print."""
    return f"{round(x, 4) + 0.0:.4f}"


def summary_lines(card: dict, prepared: PreparedData, seconds: float) -> list[str]:
    """Human-readable lines about a data card: the source (loudly when SYNTHETIC), the
    sizes, the cache, every dataset's achieved input SNR (flagged when off target) and
    the time taken."""
    lines = []
    if card["source"] == "synthetic":
        lines += ["=" * 72,
                  "SOURCE: SYNTHETIC data (built-in generator), NOT PhysioNet MIT-BIH.",
                  f"  {card.get('source_note', '')}",
                  "  Results on it are not comparable with published numbers.",
                  "=" * 72]
    else:
        lines.append(f"source: PhysioNet mitdb + nstdb from {card['data_dir']}")
    lines.append(f"revision: {card.get('revision', 'paper')} (emb mixing {card.get('emb_mixing', 'sum')}); "
                 f"split: {card['split']}; windows: {card['n_windows']} of {card['window']} samples "
                 f"(train {card['n_train']}, test {card['n_test']}) from {len(card['records'])} "
                 f"record(s), pool {card['pool_size']}, data_seed {card['data_seed']}")
    lines.append(f"cache: {'hit' if prepared.cache_hit else 'miss (built and saved)'} "
                 f"{prepared.cache_path}")
    lines.append("dataset        target   input SNR train   input SNR test")
    for d in card["datasets"]:
        worst = d["input_snr_max_abs_error_db"]
        flag = "" if worst is not None and worst <= SNR_TOLERANCE_DB else "   <-- off target!"
        lines.append(f"{d['noise_type']:<6} {d['snr_db']:>12g} dB {_db(d['input_snr_train_db']):>14} dB "
                     f"{_db(d['input_snr_test_db']):>12} dB{flag}")
    lines.append(f"time: {seconds:.2f} s")
    return lines
