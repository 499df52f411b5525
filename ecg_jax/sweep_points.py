"""A config's hyperparameter sweep as a list of points: what `--config.sweep.train.X=a,b,c` means.

A point is a dict of train-section overrides, e.g. {"learning_rate": 0.0003}; a
config without a sweep has one point, {} (the config's own values). Members are
datasets x points x seeds (train/members.py): a point is one more leading-axis
coordinate, like a seed, because no sweepable field changes a shape (the values
reach the compiled step as arrays, train/engine.py `Hyper`).

Fields that would change a shape or the member layout are refused in one line
(`sweep_field_refusal`), before anything is built or written.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Callable

from ecg_jax.errors import ConfigError

# Order = the order of a point's axes in names and tables.
SWEEPABLE = ("learning_rate", "weight_decay", "adam_b1", "adam_b2", "adam_eps", "lr_decay_epoch",
             "lr_decay_factor")
LIST_VALUED = ("lr_decay_epoch", "lr_decay_factor")
SWEEP_MODES = ("grid", "zip")
# Why a field that is not sweepable cannot be a sweep axis, by field (or section prefix).
_NOT_SWEEPABLE = {
    "train.batch_size": "it changes the shapes of the compiled step (one program serves every member)",
    "train.epochs": "every member of a program trains for the same number of epochs",
    "data.": "it changes the windows, their shapes or the data every member shares",
    "model": "it changes the network, so the parameters' shapes",
    "model_kwargs.": "it changes the network, so the parameters' shapes",
    "seeds": "seeds are already an axis: use --config.seeds",
}


def _check(low: float, high: float | None, low_inclusive: bool, text: str) -> Callable[[float], bool]:
    def ok(v: float) -> bool:
        above = v >= low if low_inclusive else v > low
        return math.isfinite(v) and above and (high is None or v < high)
    ok.text = text
    return ok


_RULES = {
    "learning_rate": (float, _check(0, None, False, "a number > 0")),
    "weight_decay": (float, _check(0, None, True, "a number >= 0")),
    "adam_b1": (float, _check(0, 1, True, "a number in [0, 1)")),
    "adam_b2": (float, _check(0, 1, True, "a number in [0, 1)")),
    "adam_eps": (float, _check(0, None, False, "a number > 0")),
    "lr_decay_epoch": (int, _check(0, None, True, "whole numbers >= 0, '/'-separated")),
    "lr_decay_factor": (float, _check(0, 1, False, "numbers in (0, 1], '/'-separated")),
}


def sweep_field_refusal(path: str) -> str | None:
    """One line for `--config.sweep.<path>` naming why a non-sweepable field cannot be an axis; None when
    `path` is not under sweep or is a sweepable field."""
    if not path.startswith("sweep."):
        return None
    rest = path[len("sweep."):]
    if rest in ("mode", "train") or rest in (f"train.{n}" for n in SWEEPABLE):
        return None
    field = rest
    why = next((w for k, w in _NOT_SWEEPABLE.items() if field == k or (k.endswith(".") and field.startswith(k))),
               "it is not a per-member hyperparameter")
    return (f"--config.sweep.{field}: {field} cannot be a sweep axis: {why}; train one workdir per value. "
            f"Sweepable: {', '.join('train.' + n for n in SWEEPABLE)}")


def _parse_value(name: str, text: str) -> Any:
    kind, ok = _RULES[name]
    parts = text.split("/") if name in LIST_VALUED else [text]
    try:
        values = tuple(kind(float(p)) if kind is int and float(p).is_integer() else kind(p) for p in parts)
    except ValueError:
        values = None
    if values is None or not all(ok(v) for v in values):
        raise ConfigError(f"sweep.train.{name}: {text!r} is not {ok.text}")
    return values if name in LIST_VALUED else values[0]


def sweep_axes(config) -> dict[str, list]:
    """{field: [value per point]} of the swept fields, in SWEEPABLE order; {} without a sweep."""
    sweep = config.get("sweep") if hasattr(config, "get") else None
    if sweep is None or "train" not in sweep:
        return {}
    unknown = sorted(set(sweep.train.keys()) - set(SWEEPABLE))
    if unknown:
        raise ConfigError(sweep_field_refusal(f"sweep.train.{unknown[0]}"))
    axes = {}
    for name in SWEEPABLE:
        text = str(sweep.train.get(name, "") or "").strip()
        if not text:
            continue
        values = [_parse_value(name, v.strip()) for v in text.split(",") if v.strip()]
        if len(set(values)) != len(values):
            raise ConfigError(f"sweep.train.{name}={text} lists a value twice; give each value once")
        axes[name] = values
    return axes


def sweep_points(config) -> list[dict]:
    """The points of `config`'s sweep, each a dict of train overrides; [{}] without a sweep.

    "grid": every combination, the last axis fastest; "zip": the i-th value of every axis together
    (axes of equal length). Each point's schedule is checked like train's (as many factors as decay
    epochs, epochs increasing) and must have as many decays as every other point (a shape).
    """
    axes = sweep_axes(config)
    if not axes:
        return [{}]
    mode = str(config.sweep.get("mode", "grid"))
    if mode not in SWEEP_MODES:
        raise ConfigError(f"sweep.mode={mode!r} is not one of {', '.join(SWEEP_MODES)}")
    names = list(axes)
    if mode == "zip":
        lengths = {n: len(v) for n, v in axes.items()}
        if len(set(lengths.values())) != 1:
            raise ConfigError("sweep.mode=zip pairs the i-th values of every axis, but the axes have "
                              + ", ".join(f"{n}: {k}" for n, k in lengths.items()) + " values; give each as many")
        combos = list(zip(*axes.values(), strict=True))
    else:
        combos = list(itertools.product(*axes.values()))
    points = [dict(zip(names, combo, strict=True)) for combo in combos]
    t = config.train
    decays = set()
    for p in points:
        epochs = tuple(p.get("lr_decay_epoch", t.lr_decay_epoch))
        factors = tuple(p.get("lr_decay_factor", t.lr_decay_factor))
        if len(epochs) != len(factors):
            raise ConfigError(f"sweep point {point_name(p)} has {len(epochs)} decay epoch(s) and {len(factors)} "
                              "factor(s); give one factor per epoch")
        if any(b <= a for a, b in zip(epochs, epochs[1:], strict=False)):   # neighbouring pairs: one shorter
            raise ConfigError(f"sweep point {point_name(p)}: lr_decay_epoch must increase")
        decays.add(len(epochs))
    if len(decays) > 1:
        raise ConfigError("every sweep point must have the same number of learning-rate decays (a shape of the "
                          f"compiled step), got {sorted(decays)}; sweep schedules of one length per run")
    return points


def point_name(point: dict) -> str:
    """A short stable label of a point: "learning_rate=0.0003,weight_decay=0" ("config" for {})."""
    if not point:
        return "config"
    def show(v):
        return "/".join(f"{x:g}" for x in v) if isinstance(v, tuple) else f"{v:g}"
    return ",".join(f"{n}={show(point[n])}" for n in SWEEPABLE if n in point)


def point_to_json(point: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in point.items()}


def point_from_json(d: dict | None) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in (d or {}).items()}


def validation_record_count(value: Any, swept: bool, n_train_records: int | None = None) -> int | None:
    """How many training records data.validation_records holds out: "auto" is none without a sweep and
    10% of the `n_train_records` (at least 1) with one (None while that count is not known); else the
    whole number given (>= 0)."""
    if value == "auto":
        if not swept:
            return 0
        return None if n_train_records is None else max(1, round(0.1 * n_train_records))
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = None
    if n is None or n < 0 or str(value).strip() not in (str(n), f"{n}.0"):
        raise ConfigError(f"data.validation_records must be \"auto\" or a whole number >= 0, got {value!r}")
    return n
