"""records -> windows: draw a revision's windows and noise starts, cut them, cache them.

`prepare_data(config)` is the entry point: PhysioNet records from a data
folder (or the built-in synthetic source), the revision's plan (windows.py for
"paper"/"first", final_revision.py for "final"), the clean windows cut, the
noise records and segment starts kept, all through the verified cache.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Mapping

import ml_collections
import numpy as np

from ecg_jax.config_utils import MIXED_NOISE, RAW_NOISE_TYPES, parse_noise_types, parse_snr_levels, resolve_config
from ecg_jax.data import final_revision, synthetic
from ecg_jax.data import records as records_lib
from ecg_jax.data import windows as windows_lib
from ecg_jax.data.cache import cache_key, load_cache, resolve_cache_dir, save_cache
from ecg_jax.data.prepared import PreparedData, SegmentBank
from ecg_jax.errors import ConfigError, DataError

log = logging.getLogger(__name__)


def resolve_source(data: ml_collections.ConfigDict) -> tuple[str, str | None]:
    """("physionet", data_dir) or ("synthetic", None) from config.data.source."""
    data_dir = records_lib.resolve_data_dir(data.data_dir)
    if data.source == "synthetic":
        return "synthetic", None
    if data_dir is None:
        if data.source == "physionet":
            raise records_lib.missing_data_error(
                "data.source is 'physionet' but no PhysioNet data folder is configured "
                f"(config.data.data_dir is empty and ${records_lib.DATA_ENV} is not set)")
        return "synthetic", None
    return "physionet", data_dir


def _plan(data: ml_collections.ConfigDict, lengths: Mapping[str, int],
          noise_lengths: Mapping[str, int]) -> windows_lib.WindowPlan:
    if data.revision == "final":
        n_train = windows_lib.n_train_of(int(data.n_windows), float(data.train_fraction))
        return final_revision.plan_final(
            lengths, noise_lengths, window=int(data.window), n_train=n_train,
            n_test=int(data.n_windows) - n_train, train_fraction=float(data.train_fraction),
            data_seed=int(data.data_seed))
    return windows_lib.plan_windows(
        lengths, noise_lengths, window=int(data.window), n_windows=int(data.n_windows),
        train_fraction=float(data.train_fraction), divisor=int(data.windows_per_record_divisor),
        data_seed=int(data.data_seed), split=data.split)


def _build_physionet(data: ml_collections.ConfigDict, data_dir: str, lengths: Mapping[str, int]):
    """Plan from the header lengths, then read one record at a time (low peak memory)."""
    fs = float(data.fs)
    mit_dir = records_lib.database_dir(data_dir, records_lib.MITDB)
    noise_records = records_lib.load_nstdb(data_dir, verify=False, expected_fs=fs)
    plan = _plan(data, lengths, {t: len(x) for t, x in noise_records.items()})
    window = int(data.window)
    clean = np.empty((plan.n_windows, window, records_lib.EXPECTED_SIGNALS), np.float32)
    for i, name in enumerate(plan.record_names):
        rows = np.nonzero(plan.record_index == i)[0]
        if rows.size:
            signal = records_lib.read_record(os.path.join(mit_dir, name), fs, check=False)
            clean[rows] = windows_lib.cut_windows(signal, plan.starts[rows], window)
    return plan, clean, noise_records


def _build_synthetic(data: ml_collections.ConfigDict):
    seed, n_samples, fs = int(data.data_seed), int(data.synthetic_samples), float(data.fs)
    ecg = records_lib.as_float32_records(
        synthetic.synthesize_ecg_records(int(data.synthetic_records), n_samples, fs=fs, seed=seed))
    # Same seed: synthetic.py draws ECG and noise from separate generator streams.
    noise_records = records_lib.as_float32_records(
        synthetic.synthesize_noise_records(n_samples, fs=fs, seed=seed))
    plan = _plan(data, {n: len(x) for n, x in ecg.items()},
                 {t: len(noise_records[t]) for t in RAW_NOISE_TYPES})
    clean = windows_lib.cut_record_windows(ecg, plan, int(data.window))
    return plan, clean, noise_records


def _arrays_of(plan: windows_lib.WindowPlan, clean: np.ndarray, noise_records: Mapping[str, np.ndarray],
               source: str) -> dict[str, np.ndarray]:
    meta = {"source": source, "record_names": list(plan.record_names), "n_train": plan.n_train,
            "train_records": list(plan.train_records), "test_records": list(plan.test_records),
            "pool_size": plan.pool_size, "segment_keys": list(plan.noise_starts)}
    arrays = {"clean": clean, "record_index": plan.record_index, "window_starts": plan.starts,
              "meta": np.array(json.dumps(meta))}
    for t in RAW_NOISE_TYPES:
        arrays[f"noise_record_{t}"] = np.asarray(noise_records[t], np.float32)
    for i, key in enumerate(plan.noise_starts):
        arrays[f"segment_starts_{i}"] = plan.noise_starts[key]
    return arrays


def _prepared_of(arrays: Mapping[str, np.ndarray], data: ml_collections.ConfigDict, **extra) -> PreparedData:
    meta = json.loads(str(arrays["meta"]))
    names = tuple(meta["record_names"])
    starts = {key: arrays[f"segment_starts_{i}"] for i, key in enumerate(meta["segment_keys"])}
    bank = SegmentBank({t: arrays[f"noise_record_{t}"] for t in RAW_NOISE_TYPES}, starts, int(data.window))
    return PreparedData(
        clean=arrays["clean"], noise=bank,
        window_records=np.asarray(names)[arrays["record_index"]],
        window_starts=arrays["window_starts"], revision=data.revision, emb_mixing=data.emb_mixing,
        source=meta["source"], n_train=int(meta["n_train"]), record_names=names, split=data.split,
        train_records=tuple(meta["train_records"]), test_records=tuple(meta["test_records"]),
        pool_size=int(meta["pool_size"]), **extra)


def _check_physionet_files(data_dir: str, names: list[str], fs: float) -> dict[str, int]:
    """Headers and file sizes of every record used; {mitdb name: n_samples}."""
    records_lib.check_records(data_dir, records_lib.NSTDB, list(RAW_NOISE_TYPES), fs)
    return records_lib.check_records(data_dir, records_lib.MITDB, names, fs)


def _verified_checksums(data_dir: str, names: list[str], fs: float) -> dict[str, str]:
    """Record checksums (verified against SHA256SUMS.txt) for the cache key.

    On a cache hit the header checks are not needed: the key holds the hash of
    every file, and the arrays were built from files with exactly these hashes
    that passed them. On a mismatch they run first, so that a truncated file
    or a bad header gets its own message rather than the generic checksum one.
    """
    try:
        return records_lib.record_checksums(data_dir, records_lib.physionet_record_paths(names))
    except DataError:
        _check_physionet_files(data_dir, names, fs)
        raise


def prepare_data(config: ml_collections.ConfigDict) -> PreparedData:
    """Clean windows and noise segments for `config`, from the cache when valid."""
    config = resolve_config(config)
    data = config.data
    source, data_dir = resolve_source(data)
    code = [windows_lib, final_revision]
    if source == "physionet":
        names = records_lib.select_records(data.records)
        checksums = _verified_checksums(data_dir, names, float(data.fs))
        code.append(records_lib)
    else:
        names = [f"synthetic x{int(data.synthetic_records)}"]
        checksums = {}
        code.append(synthetic)
    key = cache_key(data, source, names, checksums, code)
    path = os.path.join(resolve_cache_dir(data.cache_dir), f"prepared-{key[:24]}.npz")
    arrays = load_cache(path, key)
    hit = arrays is not None
    if not hit:
        start = time.perf_counter()
        if source == "physionet":
            lengths = _check_physionet_files(data_dir, names, float(data.fs))
            plan, clean, noise_records = _build_physionet(data, data_dir, lengths)
        else:
            plan, clean, noise_records = _build_synthetic(data)
        arrays = _arrays_of(plan, clean, noise_records, source)
        try:
            save_cache(path, key, arrays)
        except OSError as e:
            log.warning("could not write the prepared-data cache %s (%s); continuing without it", path, e)
        log.info("prepared %s data in %.1f s (cache miss, %s)", source, time.perf_counter() - start, path)
    prepared = _prepared_of(arrays, data, data_dir=data_dir, cache_key=key, cache_path=path, cache_hit=hit)
    if tuple(config.noise_types) == (MIXED_NOISE,):
        prepared.add_mixture(config.snr_levels)
    return prepared


def check_dataset(noise_type: str, snr_db: float, config: ml_collections.ConfigDict) -> tuple[str, float]:
    """ConfigError (listing the valid values) unless the dataset is in the config's grid."""
    config = resolve_config(config)
    (noise_type,) = parse_noise_types([noise_type])
    if noise_type not in config.noise_types:
        raise ConfigError(f"noise type {noise_type!r} is not one of the configured noise types: "
                          f"{', '.join(config.noise_types)}")
    (snr,) = parse_snr_levels([snr_db], valid=config.snr_levels)
    return noise_type, snr
