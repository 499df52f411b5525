"""Prepared data -> one .npz for other frameworks (`scripts/prepare_data.py --export PATH.npz`).

Keys: `clean` and `{noise}_{snr}` (e.g. `emb_-4`), float32 (N, window, 2) in
the protocol's example order (train rows first, as drawn); `train_index` and
`test_index` (int64 row numbers); `revision` and `data_card` (the data card as
JSON, which names the revision, split, records and normalisation). Readable
with `numpy.load(path)` alone (no pickle).
"""

from __future__ import annotations

import json
import os
import time

import ml_collections
import numpy as np

from ecg_jax.atomic import save_npz_atomic
from ecg_jax.config_utils import resolve_config
from ecg_jax.data.card import data_card, summary_lines, write_data_card
from ecg_jax.data.prepare import prepare_data
from ecg_jax.data.prepared import PreparedData
from ecg_jax.errors import OutputExistsError


def export_arrays(prepared: PreparedData, config: ml_collections.ConfigDict, path: str,
                  overwrite: bool = False) -> dict:
    """Write the arrays of every dataset of `config` to `path`; returns the data card written with them.

    Refuses to replace an existing file unless `overwrite` (FileExistsError).
    """
    config = resolve_config(config)
    if os.path.exists(path) and not overwrite:
        raise OutputExistsError(f"{path} exists; choose another path or delete it first")
    card = data_card(prepared, config)
    arrays = {"clean": np.asarray(prepared.clean, np.float32),
              "train_index": np.arange(prepared.n_train, dtype=np.int64),
              "test_index": np.arange(prepared.n_train, prepared.n_windows, dtype=np.int64),
              "revision": np.array(prepared.revision), "data_card": np.array(json.dumps(card))}
    for noise_type in config.noise_types:
        for snr in config.snr_levels:
            arrays[f"{noise_type}_{float(snr):g}"] = prepared.noisy(noise_type, snr).astype(np.float32)
    try:
        save_npz_atomic(path, arrays, overwrite=overwrite)
    except FileExistsError as e:
        raise OutputExistsError(str(e)) from None
    return card


def prepare_and_write_data_card(config: ml_collections.ConfigDict, workdir: str | None,
                                export: str | None = None) -> tuple[list[str], list[str]]:
    """Prepare the data of `config`; write <workdir>/data_card.json and/or the `export` .npz
    (`export_arrays`). Returns the summary_lines (timed from the start of this call)
    and the paths written."""
    start = time.perf_counter()
    config = resolve_config(config)
    if export and os.path.exists(export):   # before any work: never silently rewritten
        raise OutputExistsError(f"{export} exists; choose another --export path or delete it first")
    prepared = prepare_data(config)
    card = data_card(prepared, config)
    paths = []
    if workdir:
        paths.append(write_data_card(card, workdir))
    if export:
        export_arrays(prepared, config, export)
        paths.append(export)
    return summary_lines(card, prepared, time.perf_counter() - start), paths
