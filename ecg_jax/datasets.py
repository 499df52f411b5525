"""Prepared data: clean windows + raw noise segments, a verified cache, the data card.

All 4 noise types x 5 SNR levels = 20 datasets share the same clean windows
and the same noise segments (only the scale differs), so only those are
prepared and cached; each noisy dataset is mixed on demand (`noisy`), which is
cheap and exact. Rows are train first: [0, n_train) train, [n_train, N) test.

Cache: one .npz per key under config.data.cache_dir / $ECG_JAX_CACHE /
~/.cache/ecg_jax. The key hashes every config field that changes the arrays,
the sha256 of every record file (so changed data is never served from an old
cache), and the code that draws windows/synthesises records. The file holds a
checksum of its own arrays, so a truncated or corrupted file is detected and
rebuilt instead of silently feeding wrong data to training.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import tempfile
import time
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ecg_jax import noise as noise_lib
from ecg_jax import records as records_lib
from ecg_jax import windows as windows_lib
from ecg_jax.config_utils import (RAW_NOISE_TYPES, parse_noise_types, parse_snr_levels,
                                  resolve_config, write_text_atomic)
from ecg_jax.errors import ConfigError, DataError

log = logging.getLogger(__name__)

CACHE_ENV = "ECG_JAX_CACHE"
CACHE_FORMAT = 1  # bump when the cache file layout changes
DATA_CARD_NAME = "data_card.json"


@dataclasses.dataclass(frozen=True, eq=False)
class WindowSet:
    """Clean windows with their raw noise segments (row i pairs with row i)."""

    clean: np.ndarray                 # (n, L, 2) float32 mV
    noise: Mapping[str, np.ndarray]   # "bw"/"em"/"ma" -> (n, L, 2) float32
    window_records: np.ndarray        # (n,) str
    window_starts: np.ndarray         # (n,) int

    def __len__(self) -> int:
        return int(self.clean.shape[0])

    def noisy(self, noise_type: str, snr_db: float) -> np.ndarray:
        """The noisy windows of one dataset, (n, L, 2) float32."""
        raw = noise_lib.noise_for_type(self.noise, noise_type)
        return np.asarray(noise_lib.mix_at_snr(jnp.asarray(self.clean), jnp.asarray(raw),
                                               float(snr_db)))


@dataclasses.dataclass(frozen=True, eq=False)
class PreparedData(WindowSet):
    """Everything the 20 datasets are computed from, plus where it came from."""

    source: str = "physionet"         # "physionet" | "synthetic"
    n_train: int = 0
    record_names: tuple[str, ...] = ()
    split: str = "reference"
    train_records: tuple[str, ...] = ()   # inter_patient only
    test_records: tuple[str, ...] = ()
    pool_size: int = 0
    noise_starts: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    data_dir: str | None = None
    cache_key: str = ""
    cache_path: str = ""
    cache_hit: bool = False

    @property
    def n_windows(self) -> int:
        return len(self)

    @property
    def n_test(self) -> int:
        return len(self) - self.n_train

    def _rows(self, rows: slice) -> WindowSet:
        return WindowSet(self.clean[rows], {k: v[rows] for k, v in self.noise.items()},
                         self.window_records[rows], self.window_starts[rows])

    @property
    def train(self) -> WindowSet:
        return self._rows(slice(0, self.n_train))

    @property
    def test(self) -> WindowSet:
        return self._rows(slice(self.n_train, None))

    def norm_stats(self, noise_type: str, snr_db: float) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel (mean, std) of the TRAINING noisy windows of one dataset, (2,) each.

        Computed by the same function as the data card's `normalization` entries.
        """
        train = self.train
        _, mean, std = _summarize(jnp.asarray(train.clean),
                                  jnp.asarray(noise_lib.noise_for_type(train.noise, noise_type)),
                                  jnp.asarray([snr_db], jnp.float32), n_train=len(train))
        return np.asarray(mean[0]), np.asarray(std[0])


# ---------------------------------------------------------------- source

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


def resolve_cache_dir(config_cache_dir: str) -> str:
    value = config_cache_dir or os.environ.get(CACHE_ENV, "") or os.path.join("~", ".cache", "ecg_jax")
    return os.path.abspath(os.path.expanduser(value))


def _code_fingerprint(*modules: Any) -> str:
    """Hash of the source of the modules that decide the arrays' content."""
    h = hashlib.sha256()
    for module in modules:
        with open(module.__file__, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def _synthetic_module():
    from ecg_jax import synthetic  # imported lazily: only the synthetic source needs it
    return synthetic


def cache_key(data: ml_collections.ConfigDict, source: str, record_names: list[str],
              checksums: Mapping[str, str]) -> str:
    """Hash of what determines the arrays; noise_types/snr_levels are excluded
    because every dataset is computed from the same cached arrays."""
    fields: dict[str, Any] = {
        "format": CACHE_FORMAT, "source": source, "records": record_names,
        "split": data.split, "data_seed": int(data.data_seed), "window": int(data.window),
        "fs": float(data.fs), "n_windows": int(data.n_windows),
        "train_fraction": float(data.train_fraction),
        "divisor": int(data.windows_per_record_divisor), "checksums": dict(sorted(checksums.items())),
    }
    modules = [windows_lib, records_lib]
    if source == "synthetic":
        fields["synthetic_records"] = int(data.synthetic_records)
        fields["synthetic_samples"] = int(data.synthetic_samples)
        modules = [windows_lib, _synthetic_module()]
    fields["code"] = _code_fingerprint(*modules)
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


# ---------------------------------------------------------------- building

def _plan(data: ml_collections.ConfigDict, lengths: Mapping[str, int],
          noise_lengths: Mapping[str, int]) -> windows_lib.WindowPlan:
    return windows_lib.plan_windows(
        lengths, noise_lengths, window=int(data.window), n_windows=int(data.n_windows),
        train_fraction=float(data.train_fraction), divisor=int(data.windows_per_record_divisor),
        data_seed=int(data.data_seed), split=data.split)


def _cut_noise(noise_records: Mapping[str, np.ndarray], plan: windows_lib.WindowPlan,
               window: int) -> dict[str, np.ndarray]:
    return {t: windows_lib.cut_windows(noise_records[t], plan.noise_starts[t], window)
            for t in RAW_NOISE_TYPES}


def _build_physionet(data: ml_collections.ConfigDict, data_dir: str,
                     lengths: Mapping[str, int]) -> tuple[windows_lib.WindowPlan, np.ndarray, dict]:
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
    return plan, clean, _cut_noise(noise_records, plan, window)


def _build_synthetic(data: ml_collections.ConfigDict) -> tuple[windows_lib.WindowPlan, np.ndarray, dict]:
    synthetic = _synthetic_module()
    seed, n_samples, fs = int(data.data_seed), int(data.synthetic_samples), float(data.fs)
    ecg = records_lib.as_float32_records(
        synthetic.synthesize_ecg_records(int(data.synthetic_records), n_samples, fs=fs, seed=seed))
    # Same seed: synthetic.py draws ECG and noise from separate generator streams.
    noise_records = records_lib.as_float32_records(
        synthetic.synthesize_noise_records(n_samples, fs=fs, seed=seed))
    plan = _plan(data, {n: len(x) for n, x in ecg.items()},
                 {t: len(noise_records[t]) for t in RAW_NOISE_TYPES})
    clean = windows_lib.cut_record_windows(ecg, plan, int(data.window))
    return plan, clean, _cut_noise(noise_records, plan, int(data.window))


def _arrays_of(plan: windows_lib.WindowPlan, clean: np.ndarray, noise: Mapping[str, np.ndarray],
               source: str) -> dict[str, np.ndarray]:
    meta = {"source": source, "record_names": list(plan.record_names), "n_train": plan.n_train,
            "train_records": list(plan.train_records), "test_records": list(plan.test_records),
            "pool_size": plan.pool_size}
    arrays = {"clean": clean, "record_index": plan.record_index, "window_starts": plan.starts,
              "meta": np.array(json.dumps(meta))}
    for t in RAW_NOISE_TYPES:
        arrays[f"noise_{t}"] = noise[t]
        arrays[f"noise_start_{t}"] = plan.noise_starts[t]
    return arrays


# ---------------------------------------------------------------- cache file

def _arrays_checksum(arrays: Mapping[str, np.ndarray], key: str) -> str:
    h = hashlib.sha256(key.encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}".encode())
        h.update(a.data if a.ndim else a.tobytes())
    return h.hexdigest()


def save_cache(path: str, key: str, arrays: Mapping[str, np.ndarray]) -> None:
    """Write atomically: a temp file in the same folder, then os.replace."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    payload = dict(arrays, key=np.array(key), checksum=np.array(_arrays_checksum(arrays, key)))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp",
                               dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **payload)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_cache(path: str, key: str) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None when absent, stale (other key) or corrupt."""
    if not os.path.exists(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
        stored_key, stored_sum = str(arrays.pop("key")), str(arrays.pop("checksum"))
    except Exception as e:  # truncated zip, bad CRC, missing member, ...
        log.warning("prepared-data cache %s is unreadable (%s: %s); rebuilding it",
                    path, type(e).__name__, e)
        return None
    if stored_key != key:
        log.warning("prepared-data cache %s belongs to another configuration; rebuilding it", path)
        return None
    if _arrays_checksum(arrays, key) != stored_sum:
        log.warning("prepared-data cache %s fails its checksum (corrupt); rebuilding it", path)
        return None
    return arrays


def _prepared_of(arrays: Mapping[str, np.ndarray], **extra: Any) -> PreparedData:
    meta = json.loads(str(arrays["meta"]))
    names = tuple(meta["record_names"])
    return PreparedData(
        clean=arrays["clean"],
        noise={t: arrays[f"noise_{t}"] for t in RAW_NOISE_TYPES},
        window_records=np.asarray(names)[arrays["record_index"]],
        window_starts=arrays["window_starts"],
        source=meta["source"], n_train=int(meta["n_train"]), record_names=names,
        train_records=tuple(meta["train_records"]), test_records=tuple(meta["test_records"]),
        pool_size=int(meta["pool_size"]),
        noise_starts={t: arrays[f"noise_start_{t}"] for t in RAW_NOISE_TYPES}, **extra)


# ---------------------------------------------------------------- entry point

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
    if source == "physionet":
        names = records_lib.select_records(data.records)
        checksums = _verified_checksums(data_dir, names, float(data.fs))
    else:
        names = [f"synthetic x{int(data.synthetic_records)}"]
        checksums = {}
    key = cache_key(data, source, names, checksums)
    path = os.path.join(resolve_cache_dir(data.cache_dir), f"prepared-{key[:24]}.npz")
    arrays = load_cache(path, key)
    hit = arrays is not None
    if not hit:
        start = time.perf_counter()
        if source == "physionet":
            lengths = _check_physionet_files(data_dir, names, float(data.fs))
            plan, clean, noise = _build_physionet(data, data_dir, lengths)
        else:
            plan, clean, noise = _build_synthetic(data)
        arrays = _arrays_of(plan, clean, noise, source)
        try:
            save_cache(path, key, arrays)
        except OSError as e:
            log.warning("could not write the prepared-data cache %s (%s); continuing without it", path, e)
        log.info("prepared %s data in %.1f s (cache miss, %s)", source, time.perf_counter() - start, path)
    return _prepared_of(arrays, split=data.split, data_dir=data_dir, cache_key=key,
                        cache_path=path, cache_hit=hit)


# ---------------------------------------------------------------- validation and data card

def check_dataset(noise_type: str, snr_db: float, config: ml_collections.ConfigDict) -> tuple[str, float]:
    """ConfigError (listing the valid values) unless the dataset is in the config's grid."""
    config = resolve_config(config)
    (noise_type,) = parse_noise_types([noise_type])
    if noise_type not in config.noise_types:
        raise ConfigError(f"noise type {noise_type!r} is not one of the configured noise types: "
                          f"{', '.join(config.noise_types)}")
    (snr,) = parse_snr_levels([snr_db], valid=config.snr_levels)
    return noise_type, snr


def _finite_mean(x: np.ndarray) -> float:
    finite = x[np.isfinite(x)]
    return float(np.mean(finite, dtype=np.float64)) if finite.size else float("nan")


@functools.partial(jax.jit, static_argnames=("n_train",))
def _summarize(clean: jax.Array, noise: jax.Array, snrs: jax.Array, n_train: int):
    """Per SNR level: per-window input SNR (S, N) and the channel (mean, std), (S, C),
    of the first `n_train` (training) noisy windows.

    One compiled program for every level and noise type (lax.map keeps one
    noisy copy in memory at a time), which keeps a fresh process fast.
    """
    def one_level(snr):
        noisy = noise_lib.mix_at_snr(clean, noise, snr)
        mean, std = noise_lib.channel_stats(noisy[:n_train])
        return noise_lib.input_snr_db(clean, noisy), mean, std
    return jax.lax.map(one_level, snrs)


def dataset_summaries(prepared: PreparedData, noise_type: str,
                      snr_levels: list[float]) -> list[dict[str, Any]]:
    """Achieved input SNR (train/test) and normalisation statistics of each dataset."""
    raw = noise_lib.noise_for_type({k: jnp.asarray(v) for k, v in prepared.noise.items()}, noise_type)
    snr, mean, std = (np.asarray(a) for a in _summarize(
        jnp.asarray(prepared.clean), raw, jnp.asarray(snr_levels, jnp.float32), n_train=prepared.n_train))
    out = []
    for i, snr_db in enumerate(snr_levels):
        snr_train, snr_test = snr[i, :prepared.n_train], snr[i, prepared.n_train:]
        per_window = np.concatenate([snr_train, snr_test])
        finite = per_window[np.isfinite(per_window)]
        out.append({
            "noise_type": noise_type, "snr_db": snr_db,
            "input_snr_train_db": _finite_mean(snr_train), "input_snr_test_db": _finite_mean(snr_test),
            "input_snr_max_abs_error_db": float(np.max(np.abs(finite - snr_db))) if finite.size else None,
            "windows_without_finite_snr": int(per_window.size - finite.size),
            "mean": mean[i].tolist(), "std": std[i].tolist(),
        })
    return out


def data_card(prepared: PreparedData, config: ml_collections.ConfigDict) -> dict[str, Any]:
    """A JSON-able description of the data behind every table: source, split, sizes,
    per-dataset normalisation and achieved input SNR."""
    config = resolve_config(config)
    data = config.data
    summaries = [s for t in config.noise_types
                 for s in dataset_summaries(prepared, t, list(config.snr_levels))]
    card: dict[str, Any] = {"source": prepared.source}
    if prepared.source == "synthetic":
        card["source_note"] = _synthetic_module().SYNTHETIC_SOURCE_NOTE
        card["synthetic_records"] = int(data.synthetic_records)
        card["synthetic_samples"] = int(data.synthetic_samples)
    card.update({
        "records": list(prepared.record_names),
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
    lines.append(f"split: {card['split']}; windows: {card['n_windows']} of {card['window']} samples "
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


def prepare_and_write_data_card(config: ml_collections.ConfigDict, workdir: str) -> tuple[list[str], str]:
    """Prepare the data of `config` and write <workdir>/data_card.json; returns the
    summary_lines (timed from the start of this call) and the card's path."""
    start = time.perf_counter()
    config = resolve_config(config)
    prepared = prepare_data(config)
    card = data_card(prepared, config)
    path = write_data_card(card, workdir)
    return summary_lines(card, prepared, time.perf_counter() - start), path
