"""results.jsonl: one JSON object per scored run, shared by baselines and networks.

Row schema (readers ignore any other keys, e.g. "experiment", "n_test"):
  method      str    method id: "fft", "dwt", "unet", ..., "ciadnet_base", ...
  noise_type  str    one of NOISE_TYPES
  snr_db      number input SNR in dB
  seed        int | null   null for deterministic methods (FFT, DWT)
  split       str    "reference" | "inter_patient"
  source      str    "physionet" | "synthetic"
  revision    str    protocol revision: "paper" | "first" | "final" (optional: a row
                     without one reads as "paper")
  metrics     object exactly the METRIC_NAMES keys, floats (means over test windows)
  diverged    bool   optional; always true when a metric is not finite
  sweep_point str    optional: a sweep member's point ("learning_rate=0.0003"); part of the run
  validation_metrics object  optional: the metrics on the held-out validation records

JSON has no NaN/Infinity, so non-finite metrics are written as null and read
back as NaN. A run is (method, noise_type, snr_db, seed, split, source,
revision), so e.g. "first" and "paper" FFT rows never replace each other; a
row's identity is its run plus `epochs`, the epoch it was scored at, so an
evaluation of an older checkpoint sits beside the final numbers instead of
replacing them (the tables use each run's final epoch unless asked). When
several files (or lines) hold the same row key, the one read last wins;
`replace_rows` rewrites a file without duplicates.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import re
from typing import Any, Iterable

from ecg_jax.atomic import atomic_path
from ecg_jax.config_utils import MIXED_NOISE, NOISE_TYPES, REVISIONS, SPLITS
from ecg_jax.errors import DataError
from ecg_jax.interrupts import disk_full_as_one_line
from ecg_jax.metrics import METRIC_NAMES
from ecg_jax.names import METHOD_DISPLAY_NAMES, display_name  # noqa: F401  (re-exported)

RESULTS_FILENAME = "results.jsonl"
DATA_SOURCES = ("physionet", "synthetic")

# The full CIADNet is the last row of the ablation table, under this name.
ABLATION_DISPLAY_NAMES = {**METHOD_DISPLAY_NAMES, "ciadnet": "+ Channel & Spatial Shrink"}

MAIN_TABLE_METHODS = ("fft", "dwt", "emd", "unet", "dacnn", "acdae", "ags_unet", "ciadnet", "dancer")
ABLATION_METHODS = ("ciadnet_base", "ciadnet_channel", "ciadnet_spatial", "ciadnet")

_METHOD_ID = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")
_CORE_FIELDS = ("method", "noise_type", "snr_db", "seed", "split", "source", "metrics", "revision")
DEFAULT_REVISION = "paper"


def key_of(method: str, noise_type: str, snr_db: float, seed: int | None, split: str, source: str,
           revision: str = DEFAULT_REVISION) -> tuple:
    """The run key of these fields (see `run_key`); for code that expects rows before they exist."""
    key = (method, noise_type, float(snr_db), seed, split, source)
    # A "paper" key leaves the revision out (6 fields), so a row without a
    # revision field, which reads as "paper", has the same key as one naming it.
    return key if revision == DEFAULT_REVISION else key + (revision,)


def run_key(row: dict) -> tuple:
    """The identity of a run (method, dataset, seed, protocol incl. revision, and a sweep member's point),
    whatever epoch it was scored at."""
    key = key_of(row["method"], row["noise_type"], row["snr_db"], row["seed"], row["split"],
                 row["source"], row.get("revision", DEFAULT_REVISION))
    return key + (("sweep", row["sweep_point"]),) if row.get("sweep_point") else key


def row_key(row: dict) -> tuple:
    """The identity of a row: its run and the epoch it was scored at (None for baselines);
    a later row with the same key replaces an earlier one."""
    return run_key(row) + (row.get("epochs"),)


def _is_number(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def make_row(method: str, noise_type: str, snr_db: float, seed: int | None, split: str,
             source: str, metrics: dict[str, Any], revision: str = DEFAULT_REVISION, **extra: Any) -> dict:
    """A validated results row. Raises ValueError for a malformed field.

    `revision` is the protocol revision the run used ("paper" by default).

    `metrics` must have exactly the METRIC_NAMES keys; numpy/jax scalars are
    converted to float. A non-finite metric sets `diverged: true`.
    """
    if not isinstance(method, str) or not _METHOD_ID.match(method):
        raise ValueError(f"method must be a lower-case id like 'unet', got {method!r}")
    if noise_type not in NOISE_TYPES + (MIXED_NOISE,):
        raise ValueError(f"noise_type must be one of {NOISE_TYPES + (MIXED_NOISE,)}, got {noise_type!r}")
    if not _is_number(snr_db) or not math.isfinite(float(snr_db)):
        raise ValueError(f"snr_db must be a finite number, got {snr_db!r}")
    if seed is not None and not (isinstance(seed, numbers.Integral) and not isinstance(seed, bool)):
        raise ValueError(f"seed must be an int or None, got {seed!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if source not in DATA_SOURCES:
        raise ValueError(f"source must be one of {DATA_SOURCES}, got {source!r}")
    if revision not in REVISIONS:
        raise ValueError(f"revision must be one of {REVISIONS}, got {revision!r}")
    if set(metrics) != set(METRIC_NAMES):
        missing, unknown = set(METRIC_NAMES) - set(metrics), set(metrics) - set(METRIC_NAMES)
        raise ValueError(f"metrics keys must be {METRIC_NAMES}; missing {sorted(missing)}, "
                         f"unknown {sorted(unknown)}")
    clash = set(extra) & set(_CORE_FIELDS)
    if clash:
        raise ValueError(f"extra keys may not redefine core fields: {sorted(clash)}")
    values = {}
    for k in METRIC_NAMES:
        try:
            values[k] = float(metrics[k])
        except (TypeError, ValueError):
            raise ValueError(f"metric {k} must be a number, got {metrics[k]!r}") from None
    snr = float(snr_db)
    row = {
        "method": method, "noise_type": noise_type,
        "snr_db": int(snr) if snr.is_integer() else snr,
        "seed": None if seed is None else int(seed),
        "split": split, "source": source, "revision": revision, "metrics": values,
    }
    row.update(extra)
    if not all(math.isfinite(v) for v in values.values()):
        row["diverged"] = True
    return row


def _to_json_line(row: dict) -> str:
    metrics = {k: (v if math.isfinite(v) else None) for k, v in row["metrics"].items()}
    return json.dumps({**row, "metrics": metrics}, allow_nan=False, default=_json_default)


def _json_default(x: Any) -> Any:
    # numpy scalars/arrays in extra keys
    if hasattr(x, "tolist"):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def append_rows(path: str, rows: Iterable[dict]) -> None:
    """Append rows as whole lines in one write, then flush and fsync.

    A crash can lose the rows of this call but never leaves half a line.
    """
    text = "".join(_to_json_line(r) + "\n" for r in rows)
    if not text:
        return
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    size = os.path.getsize(path) if os.path.exists(path) else 0
    with disk_full_as_one_line(folder, f"{len(text.splitlines())} row(s) of {os.path.basename(path)}"):
        try:
            with open(path, "a") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
        except OSError:
            with open(path, "r+") as f:   # no half line: back to the rows it had
                f.truncate(size)
            raise


def replace_rows(path: str, rows: Iterable[dict]) -> None:
    """Write `rows` into results.jsonl, replacing the rows of the same runs and epoch.

    Other rows (other runs, other epochs) are kept as they are. The file is
    rewritten atomically (temp file, fsync, rename): a crash leaves the old or
    the new file, never a mix.
    """
    rows = list(rows)
    if not rows:
        return
    new_keys = {row_key(r) for r in rows}
    kept = []
    if os.path.exists(path):
        with open(path) as f:
            for n, line in enumerate(f, 1):
                if line.strip() and row_key(_parse_row(line, f"{path}:{n}")) not in new_keys:
                    kept.append(line if line.endswith("\n") else line + "\n")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with disk_full_as_one_line(folder, f"{len(rows)} row(s) of {os.path.basename(path)}"), \
            atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.writelines(kept)
            f.write("".join(_to_json_line(r) + "\n" for r in rows))
            f.flush()
            os.fsync(f.fileno())


def _results_files(paths: Iterable[str] | str) -> list[str]:
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files = []
    for p in paths:
        p = os.fspath(p)
        if os.path.isdir(p):
            p = os.path.join(p, RESULTS_FILENAME)
        if not os.path.isfile(p):
            raise DataError(f"no results file at {p}")
        files.append(p)
    return files


def _parse_row(line: str, where: str) -> dict:
    try:
        raw = json.loads(line)
        metrics = {k: (math.nan if v is None else v) for k, v in raw["metrics"].items()}
        core = {k: raw[k] for k in _CORE_FIELDS if k not in ("metrics", "revision")}
        core["revision"] = raw.get("revision", DEFAULT_REVISION)
        extra = {k: v for k, v in raw.items() if k not in _CORE_FIELDS}
        return make_row(metrics=metrics, **core, **extra)
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as e:
        raise DataError(f"{where}: not a valid results row ({e})") from None


def read_rows(paths: Iterable[str] | str) -> list[dict]:
    """Rows of results.jsonl files (or directories holding one), in reading order.

    A later row with the same key (see `row_key`) replaces an earlier one; the
    list is ordered by each key's last occurrence. Blank lines are skipped; a
    malformed line raises DataError naming the file and line.
    """
    merged: dict[tuple, dict] = {}
    for path in _results_files(paths):
        with open(path) as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    row = _parse_row(line, f"{path}:{n}")
                    key = row_key(row)
                    merged.pop(key, None)  # keep the order of the newest occurrence
                    merged[key] = row
    return list(merged.values())


def format_rows(rows: Iterable[dict]) -> str:
    """A compact plain-text table of rows (method, dataset, seed, output SNR, RMSE, ...)."""
    lines = [f"{'method':<18} {'noise':<5} {'in SNR':>6} {'seed':>5} {'out SNR dB':>10} {'RMSE mV':>9} "
             f"{'SNRi dB':>8} {'PRD %':>8} {'cosine':>7}  source"]
    for r in rows:
        m = r["metrics"]
        seed = "-" if r.get("seed") is None else str(r["seed"])
        flag = "  DIVERGED" if r.get("diverged") else ""
        settings = settings_text(r)
        flag += f"  {settings}" if settings else ""
        lines.append(f"{r['method']:<18} {r['noise_type']:<5} {float(r['snr_db']):>6g} {seed:>5} "
                     f"{m['snr_db']:>10.4f} {m['rmse']:>9.4f} {m['snr_improvement_db']:>8.4f} "
                     f"{m['prd']:>8.2f} {m['cosine']:>7.4f}  {r['source']}/{r['split']}/"
                     f"{r.get('revision', DEFAULT_REVISION)}{flag}")
    return "\n".join(lines)


def settings_text(row: dict) -> str:
    """The settings a row records, in words: a baseline's, a sweep member's point ("" for none)."""
    parts = []
    if row.get("sweep_point"):
        validation = (row.get("validation_metrics") or {}).get("snr_db")
        parts.append(f"sweep {row['sweep_point']}" + (f" (validation SNR {validation:.4f})" if validation is not None
                                                      else ""))
    if "imf_slice" in row:
        parts.append(f"IMF rows {row['imf_slice']}")
    if "approx_factor" in row:
        parts.append(f"universal: approximation {row['approx_factor']}, details {row['detail_factor']}")
    elif "threshold" in row:
        parts.append(f"threshold {row['threshold']:g}")
    if row.get("on_normalized"):
        parts.append("on normalised windows")
    if row.get("threshold_search"):
        parts.append("searched on training windows")
    return "; ".join(parts)


def print_rows(rows: Iterable[dict]) -> None:
    print(format_rows(rows), flush=True)
