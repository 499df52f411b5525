"""Validate and normalise ml_collections configs; save/load them as JSON.

Command-line overrides arrive in several shapes (`--config.noise_types=emb,bw`
becomes the one-element tuple ("emb,bw",)), so every list-valued field goes
through `as_list` before use.
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterable, Sequence

import ml_collections

from ecg_jax.errors import ConfigError

NOISE_TYPES = ("emb", "bw", "ma", "em")   # protocol order for tables
RAW_NOISE_TYPES = ("bw", "em", "ma")      # NSTDB records; emb = bw + em + ma
SNR_LEVELS = (-4, -2, 0, 2, 4)
SPLITS = ("reference", "inter_patient")
SOURCES = ("auto", "physionet", "synthetic")
MEMBER_PARALLELISM = ("auto", "vmap", "map")
TRAIN_LOOPS = ("auto", "scan", "host")


def as_list(value: Any) -> list:
    """A tuple/list/str field as a flat list; strings are split on commas."""
    if value is None:
        return []
    if isinstance(value, (str, bytes)):
        items: Iterable = [value]
    elif isinstance(value, Iterable):
        items = value
    else:
        items = [value]
    out = []
    for item in items:
        if isinstance(item, str):
            out.extend(p.strip() for p in item.split(",") if p.strip())
        else:
            out.append(item)
    return out


def parse_noise_types(value: Any) -> tuple[str, ...]:
    types = tuple(str(v) for v in as_list(value))
    if not types:
        raise ConfigError(f"noise_types is empty; valid noise types: {', '.join(NOISE_TYPES)}")
    for t in types:
        if t not in NOISE_TYPES:
            raise ConfigError(f"unknown noise type {t!r}; valid noise types: {', '.join(NOISE_TYPES)}")
    if len(set(types)) != len(types):
        raise ConfigError(f"noise_types has duplicates: {', '.join(types)}")
    return types


def parse_snr_levels(value: Any, valid: Sequence[float] = SNR_LEVELS) -> tuple[float, ...]:
    """SNR levels as numbers; each must be one of `valid` (the protocol's levels by default)."""
    levels = []
    for v in as_list(value):
        try:
            x = float(v)
        except (TypeError, ValueError):
            raise ConfigError(f"SNR level {v!r} is not a number; valid SNR levels: {_fmt(valid)}") from None
        if x not in [float(s) for s in valid]:
            raise ConfigError(f"SNR level {_fmt([x])} dB is not one of the configured levels: {_fmt(valid)}")
        levels.append(int(x) if x.is_integer() else x)
    if not levels:
        raise ConfigError(f"snr_levels is empty; valid SNR levels: {_fmt(valid)}")
    if len(set(levels)) != len(levels):
        raise ConfigError(f"snr_levels has duplicates: {_fmt(levels)}")
    return tuple(levels)


def check_choice(name: str, value: str, valid: Sequence[str]) -> str:
    if value not in valid:
        raise ConfigError(f"unknown {name} {value!r}; valid values: {', '.join(valid)}")
    return value


def _fmt(levels: Iterable) -> str:
    return ", ".join(f"{float(v):g}" for v in levels)


def resolve_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A copy of `config` with list fields normalised and choices validated."""
    c = ml_collections.ConfigDict(config.to_dict())
    c.noise_types = parse_noise_types(c.noise_types)
    c.snr_levels = parse_snr_levels(c.snr_levels)
    c.data.records = tuple(str(r) for r in as_list(c.data.records))
    check_choice("data.split", c.data.split, SPLITS)
    check_choice("data.source", c.data.source, SOURCES)
    if "train" in c:
        check_choice("train.member_parallelism", c.train.member_parallelism, MEMBER_PARALLELISM)
        check_choice("train.loop", c.train.get("loop", "auto"), TRAIN_LOOPS)
    if int(c.get("seeds", 1)) < 1:
        raise ConfigError(f"seeds must be at least 1, got {c.seeds}")
    return c


def config_to_json(config: ml_collections.ConfigDict) -> str:
    return json.dumps(config.to_dict(), indent=2, sort_keys=True, default=list)


def save_config(config: ml_collections.ConfigDict, path: str) -> None:
    """Write the resolved config atomically (write to a temp file, then rename)."""
    write_text_atomic(path, config_to_json(config) + "\n")


def load_config_json(path: str) -> ml_collections.ConfigDict:
    with open(path) as f:
        d = json.load(f)
    return ml_collections.ConfigDict(_lists_to_tuples(d))


def _lists_to_tuples(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _lists_to_tuples(v) for k, v in x.items()}
    if isinstance(x, list):
        return tuple(_lists_to_tuples(v) for v in x)
    return x


def write_text_atomic(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def config_differences(saved: Any, new: Any, ignore: Sequence[str] = (), prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted path, saved value, new value) for every leaf field that differs, except `ignore`d paths."""
    if isinstance(saved, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(saved) | set(new)):
            out += config_differences(saved.get(key), new.get(key), ignore, f"{prefix}{key}.")
        return out
    path = prefix.rstrip(".")
    return [] if saved == new or path in ignore else [(path, saved, new)]
