"""WFDB records: MIT-BIH Arrhythmia ECG and MIT-BIH Noise Stress Test noise.

Every problem with the files on disk becomes one `DataError` that names the
file and says how to get good data, because the alternative is a cryptic
wfdb/numpy traceback far away from the cause. Checks run before wfdb reads a
record (missing files, checksum, header fields, truncated signal file), so
wfdb only ever sees files that look right.

Layout of a data folder (what `scripts/download_data.py` writes):
    DIR/mitdb/{100.hea,100.dat,...,SHA256SUMS.txt}
    DIR/nstdb/{bw.hea,bw.dat,em.*,ma.*,SHA256SUMS.txt}
"""

from __future__ import annotations

import hashlib
import math
import os
from typing import Iterable, Mapping, Sequence

import numpy as np
import wfdb

from ecg_jax.config_utils import RAW_NOISE_TYPES
from ecg_jax.errors import ConfigError, DataError

# PhysioNet `mitdb` RECORDS order (numeric, so also sorted as strings).
MITDB_RECORDS: tuple[str, ...] = (
    "100", "101", "102", "103", "104", "105", "106", "107", "108", "109",
    "111", "112", "113", "114", "115", "116", "117", "118", "119",
    "121", "122", "123", "124",
    "200", "201", "202", "203", "205", "207", "208", "209", "210",
    "212", "213", "214", "215", "217", "219", "220", "221", "222", "223",
    "228", "230", "231", "232", "233", "234",
)
MITDB = "mitdb"
NSTDB = "nstdb"
CHECKSUM_FILE = "SHA256SUMS.txt"
EXPECTED_SIGNALS = 2
EXPECTED_FS = 360.0
DATA_ENV = "ECG_JAX_DATA"

HOW_TO_GET_DATA = (
    "get the data with `python scripts/download_data.py --out DIR` (or copy the "
    "PhysioNet mitdb/ and nstdb/ folders into DIR), then set ECG_JAX_DATA=DIR "
    "or pass --config.data.data_dir=DIR")

# Bytes per sample of the WFDB storage formats we can size-check.
_BYTES_PER_SAMPLE = {"8": 1.0, "16": 2.0, "61": 2.0, "80": 1.0, "160": 2.0,
                     "212": 1.5, "24": 3.0, "32": 4.0}
_HASH_CHUNK = 1 << 20


def resolve_data_dir(config_data_dir: str | None) -> str | None:
    """The configured data folder: config value, else $ECG_JAX_DATA, else None."""
    for value in (config_data_dir, os.environ.get(DATA_ENV, "")):
        if value:
            return os.path.abspath(os.path.expanduser(str(value)))
    return None


def missing_data_error(detail: str) -> DataError:
    return DataError(f"{detail}; {HOW_TO_GET_DATA}")


def select_records(records: Sequence[str] | None) -> list[str]:
    """Requested MIT-BIH records in sorted order (all 48 when empty).

    Sorting here means the window draw never depends on the order a user typed
    the names in, nor on file-system order.
    """
    if not records:
        return list(MITDB_RECORDS)
    names = [str(r) for r in records]
    unknown = [n for n in names if n not in MITDB_RECORDS]
    if unknown:
        raise ConfigError(f"unknown MIT-BIH record(s) {', '.join(unknown)}; "
                          f"valid records: {', '.join(MITDB_RECORDS)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"data.records has duplicates: {', '.join(names)}")
    return sorted(names)


def database_dir(data_dir: str, db: str) -> str:
    """`data_dir/db`, or a DataError saying where we looked and how to get it."""
    if not os.path.isdir(data_dir):
        raise missing_data_error(f"PhysioNet data folder {data_dir} does not exist "
                                 f"(expected {MITDB}/ and {NSTDB}/ inside it)")
    path = os.path.join(data_dir, db)
    if not os.path.isdir(path):
        raise missing_data_error(f"no {db}/ folder in the PhysioNet data folder {data_dir} "
                                 f"(looked for {path})")
    return path


def _record_file_paths(db_path: str, names: Iterable[str]) -> list[str]:
    """The .hea and .dat file of every record; DataError listing any that are missing."""
    paths = [os.path.join(db_path, f"{n}{ext}") for n in names for ext in (".hea", ".dat")]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
        raise missing_data_error(f"missing record file(s) in {db_path}: {shown}")
    return paths


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_HASH_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def read_checksum_list(db_path: str) -> dict[str, str]:
    """File name -> expected sha256 from `SHA256SUMS.txt` ({} when absent)."""
    path = os.path.join(db_path, CHECKSUM_FILE)
    if not os.path.isfile(path):
        return {}
    expected = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2:
                expected[parts[1].lstrip("*")] = parts[0].lower()
    return expected


def record_checksums(data_dir: str, names: Sequence[str]) -> dict[str, str]:
    """sha256 of each record's .hea and .dat, verified against SHA256SUMS.txt.

    `names` are record paths relative to `data_dir`, e.g. "mitdb/100" or
    "nstdb/bw". Returns {"mitdb/100.hea": hexdigest, ...}. Every file is read
    and hashed exactly once per call (nothing is cached between calls, so a
    file changed on disk is always noticed); the same digests serve as the
    verification and as part of the prepared-data cache key.
    """
    by_db: dict[str, list[str]] = {}
    for name in names:
        db, _, rec = str(name).partition("/")
        by_db.setdefault(db, []).append(rec)
    sums: dict[str, str] = {}
    for db, recs in by_db.items():
        db_path = database_dir(data_dir, db)
        expected = read_checksum_list(db_path)
        for path in _record_file_paths(db_path, recs):
            digest = sha256_file(path)
            base = os.path.basename(path)
            if base in expected and expected[base] != digest:
                raise DataError(
                    f"checksum mismatch for {path}: sha256 {digest} but "
                    f"{os.path.join(db_path, CHECKSUM_FILE)} lists {expected[base]}; "
                    f"the file is corrupt or modified; {HOW_TO_GET_DATA}")
            sums[f"{db}/{base}"] = digest
    return sums


def check_header(record_path: str, expected_fs: float = EXPECTED_FS,
                 expected_signals: int = EXPECTED_SIGNALS) -> wfdb.Record:
    """Read and check a header; also make sure the signal file is not truncated.

    The size check runs before wfdb touches the .dat, since wfdb reads a short
    file either with a cryptic error or silently padded.
    """
    hea = record_path + ".hea"
    try:
        header = wfdb.rdheader(record_path)
    except Exception as e:  # wfdb raises many types for a malformed header
        raise DataError(f"cannot read WFDB header {hea}: {e}") from None
    if header.fs is None or not math.isclose(float(header.fs), float(expected_fs)):
        raise DataError(f"header {hea} gives sampling rate {header.fs} Hz, "
                        f"expected {float(expected_fs):g} Hz")
    if header.n_sig != expected_signals:
        raise DataError(f"header {hea} gives {header.n_sig} signal(s), expected {expected_signals}")
    if not header.sig_len:
        raise DataError(f"header {hea} gives no signal length")
    _check_signal_file_sizes(record_path, header)
    return header


def _check_signal_file_sizes(record_path: str, header: wfdb.Record) -> None:
    folder = os.path.dirname(record_path)
    per_file: dict[str, list[str]] = {}
    for file_name, fmt in zip(header.file_name, header.fmt, strict=True):
        per_file.setdefault(file_name, []).append(str(fmt))
    offsets = dict(zip(header.file_name, header.byte_offset or [None] * header.n_sig, strict=True))
    for file_name, fmts in per_file.items():
        if any(f not in _BYTES_PER_SAMPLE for f in fmts):
            continue  # a format we do not size-check; wfdb will validate it
        expected = math.ceil(header.sig_len * sum(_BYTES_PER_SAMPLE[f] for f in fmts))
        expected += int(offsets.get(file_name) or 0)
        path = os.path.join(folder, file_name)
        actual = os.path.getsize(path) if os.path.isfile(path) else 0
        if actual < expected:
            raise DataError(
                f"signal file {path} is truncated: {actual} bytes, but its header "
                f"({header.sig_len} samples x {len(fmts)} signals, format {'/'.join(fmts)}) "
                f"needs {expected}; {HOW_TO_GET_DATA}")


def read_record(record_path: str, expected_fs: float = EXPECTED_FS, *,
                check: bool = True) -> np.ndarray:
    """One record as (n_samples, n_signals) float32 in physical units (mV).

    `check=False` skips `check_header` for a caller that has just run it
    (parsing a header with wfdb costs a few ms, which adds up over 48 records).
    """
    if check:
        check_header(record_path, expected_fs)
    try:
        record = wfdb.rdrecord(record_path, physical=True)
    except Exception as e:
        raise DataError(f"wfdb cannot read record {record_path}: {type(e).__name__}: {e}") from None
    # p_signal is float64; cast after scaling so the mV values are rounded once.
    return np.asarray(record.p_signal, dtype=np.float32)


def check_records(data_dir: str, db: str, names: Sequence[str],
                  expected_fs: float = EXPECTED_FS) -> dict[str, int]:
    """Files present, headers as expected, signal files not truncated.

    Returns {name: n_samples}. Runs before the checksum step so that a
    truncated file or a wrong header gets its own specific message rather than
    a generic checksum mismatch.
    """
    db_path = database_dir(data_dir, db)
    _record_file_paths(db_path, names)
    return {n: int(check_header(os.path.join(db_path, n), expected_fs).sig_len) for n in names}


def _load(data_dir: str, db: str, names: Sequence[str], verify: bool,
          expected_fs: float) -> dict[str, np.ndarray]:
    check_records(data_dir, db, names, expected_fs)
    if verify:
        record_checksums(data_dir, [f"{db}/{n}" for n in names])
    db_path = database_dir(data_dir, db)
    return {n: read_record(os.path.join(db_path, n), expected_fs, check=False) for n in names}


def load_mitdb(data_dir: str, records: Sequence[str] | None = None, *, verify: bool = True,
               expected_fs: float = EXPECTED_FS) -> dict[str, np.ndarray]:
    """MIT-BIH Arrhythmia records {name: (n, 2) float32 mV}, in sorted order.

    `verify=False` skips the checksum step when the caller has just run
    `record_checksums` on the same files (prepare_data does, for the cache key).
    """
    return _load(data_dir, MITDB, select_records(records), verify, expected_fs)


def load_nstdb(data_dir: str, *, verify: bool = True,
               expected_fs: float = EXPECTED_FS) -> dict[str, np.ndarray]:
    """The NSTDB noise records {"bw", "em", "ma": (n, 2) float32}."""
    return _load(data_dir, NSTDB, list(RAW_NOISE_TYPES), verify, expected_fs)


def physionet_record_paths(records: Sequence[str] | None = None) -> list[str]:
    """Record paths relative to the data folder for `record_checksums`."""
    return ([f"{MITDB}/{n}" for n in select_records(records)]
            + [f"{NSTDB}/{n}" for n in RAW_NOISE_TYPES])


def as_float32_records(records: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Records (e.g. from the synthetic source) checked to be (n, 2) float32, sorted by name."""
    out = {}
    for name in sorted(records):
        x = np.asarray(records[name], dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != EXPECTED_SIGNALS:
            raise DataError(f"record {name} has shape {x.shape}, expected (n, {EXPECTED_SIGNALS})")
        out[name] = x
    return out
