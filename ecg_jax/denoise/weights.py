"""Portable weights: one `.npz` that `ecg_jax.denoise` loads without the training workdir.

Layout (numpy arrays only, so `np.load(path, allow_pickle=False)` reads it):

  params/<flax path joined by '/'>        (K, ...) one slice per member
  batch_stats/<flax path joined by '/'>   (K, ...) networks with BatchNorm only
  norm_mean, norm_std                     (K, 2) float32, mV: each member's fixed input normalisation
  meta                                    0-d unicode array: a JSON object (see `build_meta`)

K >= 1 members share one network and its options; K > 1 is a seed ensemble
whose outputs are averaged. The file is written to a temporary name and
renamed, and an existing file is never replaced unless asked to.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

import flax.linen as nn
import jax
import numpy as np
from flax import traverse_util

from ecg_jax import models
from ecg_jax.atomic import save_npz_atomic
from ecg_jax.errors import EcgJaxError, one_line

# The shipped weights and their model card (dancer.json beside them): weights/ of a clone, linked into
# the package as ecg_jax/weights, so one path works in a clone and installed.
SHIPPED_WEIGHTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "weights", "dancer.npz")
FORMAT = "ecg-jax-weights"
FORMAT_VERSION = 1
COLLECTIONS = ("params", "batch_stats")
NORMALIZATION_RULE = (
    "x_net = (x_mV - norm_mean) / norm_std per lead, output_mV = y_net * norm_std + norm_mean; "
    "norm_mean/norm_std are fixed numbers from training (per-channel mean and std, in mV, of the "
    "member's noisy training windows), so denoising needs no knowledge of the recording's noise type or SNR")


class WeightsError(EcgJaxError):
    """A weights file that is missing, not ours, or inconsistent."""


def stack_variables(members: list[Mapping[str, Any]]) -> dict:
    """Per-member variable trees (identical structure) -> one tree with a leading member axis."""
    return jax.tree_util.tree_map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *members)


def member_variables(stacked: Mapping[str, Any], k: int) -> dict:
    """Member k's variables from a stacked tree."""
    return jax.tree_util.tree_map(lambda x: x[k], stacked)


def save_weights(path: str, variables_stacked: Mapping[str, Any], norm_mean, norm_std,
                 meta: Mapping[str, Any], overwrite: bool = False) -> str:
    """Write the weights file atomically; returns its path.

    `variables_stacked`: {"params": tree, ["batch_stats": tree]} with a leading member axis K;
    `norm_mean`, `norm_std`: (K, 2) mV; `meta`: JSON-able, must name "network" and "options".
    """
    if os.path.exists(path) and not overwrite:
        raise WeightsError(f"{path} exists; refusing to overwrite it (pass overwrite=True or choose another name)")
    mean, std = np.asarray(norm_mean, np.float32), np.asarray(norm_std, np.float32)
    arrays: dict[str, np.ndarray] = {}
    for collection in COLLECTIONS:
        if variables_stacked.get(collection):
            flat = traverse_util.flatten_dict(jax.device_get(dict(variables_stacked[collection])), sep="/")
            arrays.update({f"{collection}/{k}": np.asarray(v) for k, v in flat.items()})
    sizes = {v.shape[0] for v in arrays.values()}
    if len(sizes) != 1 or mean.shape != (next(iter(sizes)), 2) or std.shape != mean.shape:
        raise WeightsError(f"inconsistent member axes: variables {sorted(sizes)}, norm_mean {mean.shape}, "
                           f"norm_std {std.shape}")
    if "network" not in meta or "options" not in meta:
        raise WeightsError("meta must name the network and its options")
    full_meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "normalization_rule": NORMALIZATION_RULE,
                 **meta, "members_count": int(mean.shape[0])}
    arrays.update(norm_mean=mean, norm_std=std, meta=np.asarray(json.dumps(full_meta)))
    try:
        save_npz_atomic(path, arrays, overwrite=overwrite)
    except FileExistsError as e:   # someone else wrote it meanwhile
        raise WeightsError(str(e)) from None
    return path


def read_meta(path: str) -> dict:
    """The meta JSON of a weights file (without loading the arrays' values)."""
    with _open(path) as data:
        return _meta(data, path)


def load_weights(path: str, allow_changed_model_source: bool = False
                 ) -> tuple[nn.Module, dict, np.ndarray, np.ndarray, dict]:
    """(model, variables_stacked, norm_mean (K, 2), norm_std (K, 2), meta) from a weights file.

    Your own network (meta "model_source", written by export) is rebuilt from the file it records; a
    source changed since the export is refused in one line unless `allow_changed_model_source`."""
    with _open(path) as data:
        meta = _meta(data, path)
        variables: dict[str, Any] = {}
        try:
            for collection in COLLECTIONS:
                prefix = f"{collection}/"
                flat = {k[len(prefix):]: np.asarray(data[k]) for k in data.files if k.startswith(prefix)}
                if flat:
                    variables[collection] = traverse_util.unflatten_dict(flat, sep="/")
            mean, std = np.asarray(data["norm_mean"], np.float32), np.asarray(data["norm_std"], np.float32)
        except Exception as e:  # noqa: BLE001 - a damaged member of the archive: one line
            raise WeightsError(f"{path} is damaged ({one_line(e)})") from None
    if "params" not in variables:
        raise WeightsError(f"{path} holds no parameters")
    sizes = {np.shape(v)[0] if np.ndim(v) else None for v in jax.tree_util.tree_leaves(variables)}
    if mean.ndim != 2 or mean.shape[1:] != (2,) or std.shape != mean.shape or sizes != {mean.shape[0]}:
        raise WeightsError(f"{path} is inconsistent: norm_mean {mean.shape}, norm_std {std.shape}, "
                           f"member axes of the variables {sorted(map(str, sizes))}")
    if isinstance(meta.get("model_source"), dict):
        from ecg_jax.models.external import check_source

        check_source(meta["network"], meta["model_source"], f"{path} was exported", allow_changed_model_source,
                     f"recorded in {path}")
    # Looked up on the module at call time, so a network patched into it (the tests' "scale") is found.
    model = models.create_model(meta["network"], **meta.get("options", {}))
    check_fits(model, variables, path, meta["network"])
    return model, variables, mean, std, meta


def check_fits(model: nn.Module, variables_stacked: Mapping[str, Any], path: str, network: str) -> None:
    """Every array of the file against the network it names (name, shape without the member axis,
    dtype), before any of them is used: one line naming what is missing, extra or wrong."""
    import jax.numpy as jnp

    dummy = jnp.zeros((1, 256, 2), jnp.float32)   # the denoiser's window (core.WINDOW x core.CHANNELS)
    abstract = jax.eval_shape(lambda: model.init(jax.random.key(0), dummy, train=False))
    expected = {f"{c}/{k}": (tuple(v.shape), np.dtype(v.dtype)) for c in COLLECTIONS if c in abstract
                for k, v in traverse_util.flatten_dict(dict(abstract[c]), sep="/").items()}
    have = {f"{c}/{k}": (tuple(np.shape(v)[1:]), np.asarray(v).dtype) for c in COLLECTIONS if c in variables_stacked
            for k, v in traverse_util.flatten_dict(dict(variables_stacked[c]), sep="/").items()}
    problems = []
    missing = sorted(set(expected) - set(have))
    extra = sorted(set(have) - set(expected))
    if missing:
        problems.append(f"missing {_some(missing)}")
    if extra:
        problems.append(f"unexpected {_some(extra)}")
    wrong = [f"{k} is {_describe(have[k])}, the network needs {_describe(expected[k])}"
             for k in sorted(set(have) & set(expected)) if have[k] != expected[k]]
    if wrong:
        problems.append(_some(wrong))
    if problems:
        raise WeightsError(f"{path} does not fit the network it names ({network}): " + "; ".join(problems)
                           + "; export the weights again (scripts/export.py) or use the file written with them")


def _some(items: list[str], n: int = 3) -> str:
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


def _describe(shape_dtype) -> str:
    shape, dtype = shape_dtype
    return f"{dtype} {list(shape)} per member"


def _open(path: str):
    if not os.path.exists(path):
        raise WeightsError(f"weights file {path} does not exist")
    if os.path.isdir(path):
        raise WeightsError(f"{path} is a folder, not a weights file")
    if not path.lower().endswith(".npz"):
        raise WeightsError(f"{path} is not a weights file: it must be a .npz written by scripts/export.py")
    with open(path, "rb") as f:
        magic = f.read(6)
    # np.load guesses by content: anything neither a zip nor a .npy it calls pickled data (and
    # suggests allow_pickle, never right here).
    if magic == b"\x93NUMPY":
        raise WeightsError(f"{path} is not a weights file: it holds one array, not an .npz archive")
    if not magic.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        raise WeightsError(f"{path} is not a weights file: it is not an .npz (zip) archive; it may be damaged "
                           "or another kind of file")
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - whatever numpy raises for a file that is not an npz
        raise WeightsError(f"{path} is not a weights file ({one_line(e)})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):   # a .npy array saved under a .npz name
        raise WeightsError(f"{path} is not a weights file: it holds one array, not an .npz archive")
    return data


def _meta(data, path: str) -> dict:
    missing = {"meta", "norm_mean", "norm_std"} - set(data.files)
    if missing:
        raise WeightsError(f"{path} is not an ecg-jax weights file (missing {', '.join(sorted(missing))})")
    try:
        meta = json.loads(str(data["meta"]))
    except Exception as e:  # noqa: BLE001 - damaged archive member or JSON
        raise WeightsError(f"{path}: its meta is not readable JSON ({one_line(e)})") from None
    if not isinstance(meta, dict):
        raise WeightsError(f"{path}: its meta is not a JSON object")
    if meta.get("format") != FORMAT or not isinstance(meta.get("format_version", 0), int) \
            or meta.get("format_version", 0) > FORMAT_VERSION:
        raise WeightsError(f"{path}: unsupported weights format {meta.get('format')!r} "
                           f"version {meta.get('format_version')!r} (this code reads {FORMAT} <= {FORMAT_VERSION})")
    if not isinstance(meta.get("network"), str) or not isinstance(meta.get("options", {}), dict):
        raise WeightsError(f"{path}: its meta names no network or options")
    return meta
