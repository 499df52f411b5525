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

import ml_collections
import numpy as np

from ecg_jax.atomic import save_npz_atomic
from ecg_jax.config_utils import resolve_config
from ecg_jax.data.card import data_card
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
