"""The prepared-data cache: one verified .npz per configuration.

One file per key under config.data.cache_dir / $ECG_JAX_CACHE /
~/.cache/ecg_jax. The key hashes every config field that changes the arrays,
the sha256 of every record file (so changed data is never served from an old
cache), and the code that draws windows/synthesises records. The file holds a
checksum of its own arrays, so a truncated or corrupted file is detected and
rebuilt instead of silently feeding wrong data to training.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Any, Mapping

import ml_collections
import numpy as np

from ecg_jax.atomic import save_npz_atomic

log = logging.getLogger(__name__)

CACHE_ENV = "ECG_JAX_CACHE"
CACHE_FORMAT = 2  # bump when the cache file layout changes (2: noise records + segment starts)


def resolve_cache_dir(config_cache_dir: str) -> str:
    value = config_cache_dir or os.environ.get(CACHE_ENV, "") or os.path.join("~", ".cache", "ecg_jax")
    return os.path.abspath(os.path.expanduser(value))


def code_fingerprint(*modules: Any) -> str:
    """Hash of the source of the modules that decide the arrays' content."""
    h = hashlib.sha256()
    for module in modules:
        with open(module.__file__, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def cache_key(data: ml_collections.ConfigDict, source: str, record_names: list[str],
              checksums: Mapping[str, str], code_modules: list[Any]) -> str:
    """Hash of what determines the arrays; noise_types/snr_levels and the emb mixing are
    excluded because every dataset is mixed on demand from the same cached arrays."""
    fields: dict[str, Any] = {
        "format": CACHE_FORMAT, "source": source, "records": record_names,
        "revision": data.revision, "split": data.split, "data_seed": int(data.data_seed),
        "window": int(data.window), "fs": float(data.fs), "n_windows": int(data.n_windows),
        "train_fraction": float(data.train_fraction),
        "divisor": int(data.windows_per_record_divisor), "checksums": dict(sorted(checksums.items())),
    }
    if source == "synthetic":
        fields["synthetic_records"] = int(data.synthetic_records)
        fields["synthetic_samples"] = int(data.synthetic_samples)
    fields["code"] = code_fingerprint(*code_modules)
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def _arrays_checksum(arrays: Mapping[str, np.ndarray], key: str) -> str:
    h = hashlib.sha256(key.encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}".encode())
        h.update(a.data if a.ndim else a.tobytes())
    return h.hexdigest()


def save_cache(path: str, key: str, arrays: Mapping[str, np.ndarray]) -> None:
    """Write atomically: a temp file in the same folder, then os.replace."""
    payload = dict(arrays, key=np.array(key), checksum=np.array(_arrays_checksum(arrays, key)))
    save_npz_atomic(path, payload)


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
