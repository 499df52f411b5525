"""Validate and normalise ml_collections configs; save/load them as JSON.

Command-line overrides arrive in several shapes (`--config.noise_types=emb,bw`
becomes the one-element tuple ("emb,bw",)), so every list-valued field goes
through `as_list` before use.
"""

from __future__ import annotations

import difflib
import json
import math
import numbers
from typing import Any, Callable, Iterable, Sequence

import ml_collections

from ecg_jax.atomic import write_text_atomic  # noqa: F401  (re-exported: callers import it from here)
from ecg_jax.errors import ConfigError, DataError
from ecg_jax.sweep_points import SWEEP_MODES, SWEEPABLE, sweep_field_refusal, sweep_points, validation_record_count

NOISE_TYPES = ("emb", "bw", "ma", "em")   # protocol order for tables
# Training only (e.g. configs/denoiser.py): every window gets its own noise type
# and SNR, drawn round-robin from NOISE_TYPES x snr_levels (ecg_jax/noise.py).
MIXED_NOISE = "mixed"
RAW_NOISE_TYPES = ("bw", "em", "ma")      # NSTDB records; emb = bw + em + ma
SNR_LEVELS = (-4, -2, 0, 2, 4)
SPLITS = ("reference", "inter_patient")
REVISIONS = ("paper", "first", "final")
EMB_MIXINGS = ("auto", "sum", "mean_of_scaled")
SCORE_AGGREGATIONS = ("window", "batch_means")
BASELINE_METHODS = ("fft", "dwt", "emd")
DWT_RULES = ("signed_max", "universal")
SOURCES = ("auto", "physionet", "synthetic")
MEMBER_PARALLELISM = ("auto", "vmap", "map")
TRAIN_LOOPS = ("auto", "scan", "host")
# train/precision.py (kept in step by tests/test_precision.py; that module imports jax)
PRECISIONS = ("highest", "high", "default")
INPUT_ROUNDINGS = ("none", "bfloat16", "tf32")


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
        if t not in NOISE_TYPES + (MIXED_NOISE,):
            raise ConfigError(f"unknown noise type {t!r}; valid noise types: {', '.join(NOISE_TYPES)} "
                              f"(or {MIXED_NOISE} alone, for training on all of them at once)")
    if MIXED_NOISE in types and len(types) > 1:
        raise ConfigError(f"noise type {MIXED_NOISE!r} already covers {', '.join(NOISE_TYPES)}; give it alone")
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


def dataset_grid(config: ml_collections.ConfigDict) -> list[tuple[str, float]]:
    """The (noise type, SNR) datasets of a resolved config, noise-type-major.

    The training mixture is one dataset; its nominal SNR is the mean of the
    levels its windows are drawn from (0 dB for -4..4).
    """
    if tuple(config.noise_types) == (MIXED_NOISE,):
        levels = [float(s) for s in config.snr_levels]
        return [(MIXED_NOISE, sum(levels) / len(levels))]
    return [(n, s) for n in config.noise_types for s in config.snr_levels]


def check_choice(name: str, value: str, valid: Sequence[str]) -> str:
    if value not in valid:
        raise ConfigError(f"unknown {name} {value!r}; valid values: {', '.join(valid)}")
    return value


def _fmt(levels: Iterable) -> str:
    return ", ".join(f"{float(v):g}" for v in levels)


def resolve_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A copy of `config` with list fields normalised and every field validated.

    Complete: no unknown field (the closest valid one is named), every field of
    the sections present (data, train, baselines) there, of its type and in
    its range (`check_trainable` adds the batch-vs-windows rule for training). So a run,
    an evaluation or a baseline run stops here, with one line naming the
    field, the bad value and what is allowed, before anything is written.
    Only the sections present are checked: the baseline config has no
    `train`, the paper config (configs/paper.py) no `model`.
    """
    check_known_fields(config.to_dict())
    c = ml_collections.ConfigDict(config.to_dict())
    for name in REQUIRED_TOP_LEVEL:
        if name not in c:
            raise ConfigError(f"config has no field {name}; every config needs {', '.join(REQUIRED_TOP_LEVEL)}")
    for path, check in FIELD_RULES.items():
        section, _, name = path.rpartition(".")
        if section and section not in c:
            continue
        holder = c[section] if section else c
        if name not in holder:
            if section in REQUIRED_SECTIONS and path not in OPTIONAL_FIELDS:
                raise ConfigError(f"config section {section} has no field {name}; "
                                  f"see configs/common.py for every field of {section}")
            continue
        check(path, holder[name])
    c.noise_types = parse_noise_types(c.noise_types)
    c.snr_levels = parse_snr_levels(c.snr_levels)
    c.data.records = parse_records(c.data.records)
    resolve_revision(c)
    if "train" in c:
        c.train = resolve_lr_schedule(c.train)
        sweep_points(c)   # every sweep field parsed and checked now, before anything is built
    if "data" in c:
        validation_record_count(c.data.get("validation_records", "auto"), False)
    check_window_counts(c)
    check_member_count(c)
    return c


# Members (seeds x datasets [x experiments]) one config may ask for: a typo such as seeds=100000000
# would otherwise build a member list of many GB before any other check could stop it.
MAX_MEMBERS = 100_000


def check_member_count(c: ml_collections.ConfigDict) -> None:
    """ConfigError (one line, count and limit) when a config asks for more than MAX_MEMBERS members.
    Counted from the field values alone: nothing of the size asked for is built."""
    if "seeds" not in c or not _is_int(c.seeds):
        return
    factors = [(f"seeds={c.seeds}", int(c.seeds))]
    datasets = len(dataset_grid(c))
    factors.append((f"{datasets} dataset(s)", datasets))
    experiments = c.get("experiments")
    if experiments is not None and hasattr(experiments, "keys") and len(experiments.keys()) > 1:
        factors.append((f"{len(experiments.keys())} experiments", len(experiments.keys())))
    if "train" in c and "sweep" in c:
        points = len(sweep_points(c))
        if points > 1:
            factors.append((f"{points} sweep points", points))
    total = math.prod(n for _, n in factors)
    if total > MAX_MEMBERS:
        raise ConfigError(f"{' x '.join(text for text, _ in factors)} = {total} members, more than the limit of "
                          f"{MAX_MEMBERS}; use fewer seeds (or fewer noise_types/snr_levels)")


# ------------------------------------------------------------------ validation

def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _got(value: Any, type_ok: bool) -> str:
    return f"got {_show(value)}" + ("" if type_ok else f" ({type(value).__name__})")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _integer(minimum: int) -> Callable[[str, Any], None]:
    def check(path: str, value: Any) -> None:
        if not _is_int(value) or value < minimum:
            raise ConfigError(f"{path} must be an integer >= {minimum}, {_got(value, _is_int(value))}")
    return check


def _number(low: float, high: float | None = None, low_inclusive: bool = False,
            high_inclusive: bool = True) -> Callable[[str, Any], None]:
    if high is None:
        allowed = f"a number {'>=' if low_inclusive else '>'} {low:g}"
    else:
        allowed = f"a number in {'[' if low_inclusive else '('}{low:g}, {high:g}{']' if high_inclusive else ')'}"

    def check(path: str, value: Any) -> None:
        ok = _is_number(value) and math.isfinite(value)
        if ok:
            x = float(value)
            ok = (x >= low if low_inclusive else x > low) and \
                (high is None or (x <= high if high_inclusive else x < high))
        if not ok:
            raise ConfigError(f"{path} must be {allowed}, {_got(value, _is_number(value))}")
    return check


def _boolean(path: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{path} must be True or False, {_got(value, False)}")


def _string(path: str, value: Any) -> None:
    if not isinstance(value, str):
        raise ConfigError(f"{path} must be a string, {_got(value, False)}")


def _name(path: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{path} must be a non-empty string, {_got(value, isinstance(value, str))}")


def _choice(valid: Sequence[str]) -> Callable[[str, Any], None]:
    def check(path: str, value: Any) -> None:
        check_choice(path, value, valid)
    return check


def _mapping(path: str, value: Any) -> None:
    if not isinstance(value, (dict, ml_collections.ConfigDict)):
        raise ConfigError(f"{path} must be a section of named fields, {_got(value, False)}")


def _string_mapping(path: str, value: Any) -> None:
    _mapping(path, value)
    for key, item in value.items():
        if not isinstance(item, str):
            raise ConfigError(f"{path}.{key} must be a string (a config file in configs/, e.g. 'ciadnet.py:base'), "
                              f"{_got(item, False)}")


def _noise_types_mapping(path: str, value: Any) -> None:
    """Experiment id -> the noise types it runs instead of the shared ones ("emb" or "emb,bw")."""
    _mapping(path, value)
    for key, item in value.items():
        for name in as_list(item):
            if name not in NOISE_TYPES:
                raise ConfigError(f"{path}.{key}: unknown noise type {name!r} (valid: {', '.join(NOISE_TYPES)})")


def _names(path: str, value: Any) -> None:
    for item in as_list(value):
        if not isinstance(item, str):
            raise ConfigError(f"{path} must be names (a comma-separated string or a list of strings), "
                              f"{_got(item, False)} in it")


def _each(check: Callable[[str, Any], None], parse: Callable[[str], Any] | None = None
          ) -> Callable[[str, Any], None]:
    """A rule for a list field (one value or a comma string on the command line);
    `parse` turns command-line strings into numbers first."""
    def check_each(path: str, value: Any) -> None:
        items = as_list(value)
        if not items:
            raise ConfigError(f"{path} is empty")
        for item in items:
            if parse is not None and isinstance(item, str):
                try:
                    item = parse(item)
                except ValueError:
                    raise ConfigError(f"{path}: {item!r} is not a number") from None
            check(path, item)
    return check_each


def parse_number_list(value: Any, parse: Callable[[str], Any]) -> tuple:
    return tuple(parse(v) if isinstance(v, str) else v for v in as_list(value))


def _parsed_elsewhere(path: str, value: Any) -> None:
    """noise_types, snr_levels, data.records: checked while being normalised."""


# Every field of configs/common.base_config() (tests/test_configs.py checks
# that none is missing) and the paper config's own fields (configs/paper.py),
# with the rule its value must follow.
FIELD_RULES: dict[str, Callable[[str, Any], None]] = {
    "experiment": _name,
    "model": _name,
    "model_kwargs": _mapping,   # the network's own keyword arguments: checked when it is built
    "seeds": _integer(1),
    "seed_offset": _integer(0),
    "noise_types": _parsed_elsewhere,
    "snr_levels": _parsed_elsewhere,
    "data.source": _choice(SOURCES),
    "data.data_dir": _string,
    "data.records": _parsed_elsewhere,
    "data.revision": _choice(REVISIONS),
    "data.split": _choice(SPLITS),
    "data.emb_mixing": _choice(EMB_MIXINGS),
    "data.data_seed": _integer(0),
    "data.window": _integer(16),
    "data.fs": _number(0),
    "data.n_windows": _integer(2),
    "data.train_fraction": _number(0, 1, high_inclusive=False),
    "data.validation_records": _parsed_elsewhere,
    "data.windows_per_record_divisor": _integer(1),
    "data.cache_dir": _string,
    "data.synthetic_records": _integer(1),
    "data.synthetic_samples": _integer(1),
    "train.epochs": _integer(1),
    "train.batch_size": _integer(1),
    "train.learning_rate": _number(0),
    "train.weight_decay": _number(0, low_inclusive=True),
    "train.adam_b1": _number(0, 1, low_inclusive=True),
    "train.adam_b2": _number(0, 1, low_inclusive=True),
    "train.adam_eps": _number(0),
    "train.lr_decay_epoch": _each(_integer(0), int),
    "train.lr_decay_factor": _each(_number(0, 1), float),
    "train.score_aggregation": _choice(SCORE_AGGREGATIONS),
    "train.member_parallelism": _choice(MEMBER_PARALLELISM),
    "train.loop": _choice(TRAIN_LOOPS),
    "train.max_members_per_program": _integer(0),
    "train.gpu_deterministic": _boolean,
    "train.precision": _choice(PRECISIONS),
    "train.conv_input_rounding": _choice(INPUT_ROUNDINGS),
    "train.checkpoint_every": _integer(1),
    "train.keep_checkpoints": _integer(1),
    "train.tensorboard": _boolean,
    "baselines.fft_threshold": _number(0, low_inclusive=True),
    "baselines.dwt_threshold": _number(0, low_inclusive=True),
    "baselines.threshold_search": _boolean,
    "baselines.methods": _each(_choice(BASELINE_METHODS)),
    "baselines.dwt_rule": _choice(DWT_RULES),
    "baselines.on_normalized": _boolean,
    "sweep.mode": _choice(SWEEP_MODES),
    **{f"sweep.train.{name}": _string for name in SWEEPABLE},   # parsed by sweep_points.sweep_points
    # configs/paper.py
    "networks": _names,
    "experiments": _string_mapping,
    "experiment_noise_types": _noise_types_mapping,
    "baselines_enabled": _boolean,
}
REQUIRED_TOP_LEVEL = ("noise_types", "snr_levels", "data")
# Sections whose fields must all be there when the section is, except
# OPTIONAL_FIELDS: a saved config.json without one reads its default, so every
# saved workdir stays loadable.
REQUIRED_SECTIONS = ("data", "train", "baselines")
OPTIONAL_FIELDS = ("train.loop", "train.gpu_deterministic", "data.revision", "data.emb_mixing",
                   "train.score_aggregation", "baselines.methods", "baselines.dwt_rule",
                   "baselines.on_normalized", "train.precision", "train.conv_input_rounding",
                   "train.weight_decay", "train.adam_b1", "train.adam_b2", "train.adam_eps",
                   "data.validation_records")
# What a config saved before a field existed means by its absence: the value every run had then
# (`with_defaults`), so an older workdir compares equal to the same config today.
DEFAULTS_OF_LATER_FIELDS = {"train.weight_decay": 0.0, "train.adam_b1": 0.9, "train.adam_b2": 0.999,
                            "train.adam_eps": 1e-8, "data.validation_records": "auto",
                            "sweep": {"mode": "grid", "train": {name: "" for name in SWEEPABLE}}}
# Sections whose keys are free: the network's keyword arguments, the paper's experiment ids.
FREE_SECTIONS = ("model_kwargs", "experiments", "experiment_noise_types")
# Fields that change no member's numbers: where the data and caches are, how
# members are laid out, looped and logged. A finished workdir that differs from
# a config only in these is still that config's result (reproduce.py).
NOT_AFFECTING_RESULTS = ("experiment", "data.data_dir", "data.cache_dir", "train.member_parallelism",
                         "train.loop", "train.tensorboard", "train.checkpoint_every",
                         "train.keep_checkpoints", "train.max_members_per_program", "train.gpu_deterministic")
# A resumed run may change those too, except the chunking its checkpoints were
# written with, and may train for more (or fewer) epochs.
RESUMABLE_CHANGES = tuple(f for f in NOT_AFFECTING_RESULTS if f != "train.max_members_per_program") + \
    ("train.epochs",)
SECTIONS = REQUIRED_SECTIONS + FREE_SECTIONS + ("sweep", "sweep.train")


def with_defaults(config: dict) -> dict:
    """A saved config (dict) with DEFAULTS_OF_LATER_FIELDS filled in where it has none."""
    out = json.loads(json.dumps(config))
    for path, value in DEFAULTS_OF_LATER_FIELDS.items():
        section, _, name = path.rpartition(".")
        holder = out.get(section) if section else out
        # Top-level sections only in a training config (a baseline config has no train section).
        if isinstance(holder, dict) and name not in holder and (section or "train" in out):
            holder[name] = json.loads(json.dumps(value))
    return out


def check_known_fields(config: dict, prefix: str = "") -> None:
    """Refuse a field that no config has (a misspelling), naming the closest valid one."""
    known = [p for p in FIELD_RULES if p.startswith(prefix) and p.count(".") == prefix.count(".")]
    for key, value in config.items():
        path = f"{prefix}{key}"
        refusal = sweep_field_refusal(path)
        if refusal:
            raise ConfigError(refusal)
        if path in SECTIONS and path not in FREE_SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"{path} must be a section of named fields, {_got(value, False)}")
            check_known_fields(value, f"{path}.")
        elif path not in known:
            shown = "" if isinstance(value, dict) else f"={_show(value)}"
            raise ConfigError(f"unknown config field {path}{shown}; did you mean "
                              f"{closest_field(path, list(FIELD_RULES) + list(SECTIONS))}?")


def closest_field(path: str, candidates: Iterable[str]) -> str:
    """The candidate field path most like `path` (difflib), e.g. train.epochs for trian.epochs."""
    return difflib.get_close_matches(path, list(candidates), n=1, cutoff=0.0)[0]


def field_paths(config: Any, prefix: str = "") -> list[str]:
    """Every dotted field path of a (nested) config: sections and leaves."""
    out = []
    for key, value in config.items():
        out.append(f"{prefix}{key}")
        if isinstance(value, (dict, ml_collections.ConfigDict)):
            out += field_paths(value, f"{prefix}{key}.")
    return out


def parse_records(value: Any) -> tuple[str, ...]:
    records = tuple(str(r) for r in as_list(value))
    if len(set(records)) != len(records):
        raise ConfigError(f"data.records has duplicates: {', '.join(records)}; "
                          "each record may be listed once (() for all 48)")
    return records


def resolve_revision(c: ml_collections.ConfigDict) -> None:
    """Fill data.emb_mixing="auto" from the revision; the final revision's draws need its split."""
    d = c.data
    d.revision = d.get("revision", "paper")
    mixing = d.get("emb_mixing", "auto")
    if mixing == "auto":
        mixing = "mean_of_scaled" if d.revision == "first" else "sum"
    d.emb_mixing = mixing
    if d.revision == "final" and d.split != "inter_patient":
        raise ConfigError("data.revision='final' draws an inter-patient split; set data.split=inter_patient "
                          "(configs/final.py does)")


def resolve_lr_schedule(t: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The train section with lr_decay_epoch / lr_decay_factor as equally long tuples (epochs increasing);
    a new section, because a field given as a number keeps the number type in a ConfigDict."""
    epochs = parse_number_list(t.lr_decay_epoch, int)
    factors = parse_number_list(t.lr_decay_factor, float)
    if len(epochs) != len(factors):
        raise ConfigError(f"train.lr_decay_epoch has {len(epochs)} value(s) and train.lr_decay_factor "
                          f"{len(factors)}; give one factor per epoch")
    if any(b <= a for a, b in zip(epochs, epochs[1:], strict=False)):   # neighbouring pairs: one shorter
        raise ConfigError(f"train.lr_decay_epoch must increase, got {', '.join(map(str, epochs))}")
    return ml_collections.ConfigDict({**t.to_dict(), "lr_decay_epoch": epochs, "lr_decay_factor": factors})


def check_window_counts(c: ml_collections.ConfigDict) -> None:
    """Training and test windows both there."""
    if "data" not in c:
        return
    d = c.data
    n_train = int(round(d.n_windows * d.train_fraction))
    if not 0 < n_train < d.n_windows:
        raise ConfigError(f"data.n_windows={d.n_windows} with data.train_fraction={d.train_fraction:g} leaves "
                          f"{n_train} training and {d.n_windows - n_train} test windows; both must be at least 1")


def check_trainable(c: ml_collections.ConfigDict) -> None:
    """At least one batch of training windows: checked by whatever trains (not by data-only scripts,
    which share the config files and their training section)."""
    d = c.data
    n_train = int(round(d.n_windows * d.train_fraction))
    if c.train.batch_size > n_train:
        raise ConfigError(f"train.batch_size={c.train.batch_size} is larger than the {n_train} training windows "
                          f"(data.n_windows={d.n_windows} x data.train_fraction={d.train_fraction:g}); "
                          f"use train.batch_size <= {n_train} or more data.n_windows")


def config_to_json(config: ml_collections.ConfigDict) -> str:
    return json.dumps(config.to_dict(), indent=2, sort_keys=True, default=list)


def save_config(config: ml_collections.ConfigDict, path: str) -> None:
    """Write the resolved config atomically (write to a temp file, then rename)."""
    write_text_atomic(path, config_to_json(config) + "\n")


_JSON_TYPES = {dict: "an object", list: "a list", str: "a string", bool: "true/false", int: "a number",
               float: "a number", type(None): "null"}


def read_json_file(path: str, expected: type = dict,
                   hint: str = "restore it from a backup or start a new workdir") -> Any:
    """A workdir's JSON file (config.json, members.json, data_card.json, ...), or DataError in one line
    naming the file, what is wrong with it and `hint`: unreadable, not JSON (truncated, binary), or JSON
    of another type than `expected`. The one reader of these files, so every command says the same."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DataError(f"cannot read {path} ({e.strerror or e}); {hint}") from None
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise DataError(f"{path} is damaged (not JSON: not UTF-8 text); {hint}") from None
    except ValueError as e:   # json.JSONDecodeError; also NaN/huge-number oddities
        detail = str(e).splitlines()[0] if str(e).strip() else "empty" if not raw.strip() else type(e).__name__
        raise DataError(f"{path} is damaged (not JSON: {detail}); {hint}") from None
    except RecursionError:
        raise DataError(f"{path} is damaged (not JSON: nested too deeply); {hint}") from None
    if not isinstance(value, expected):
        raise DataError(f"{path} is damaged (JSON {_JSON_TYPES.get(type(value), type(value).__name__)}, "
                        f"expected {_JSON_TYPES.get(expected, expected.__name__)}); {hint}")
    return value


def load_config_json(path: str) -> ml_collections.ConfigDict:
    d = with_defaults(read_json_file(path))
    try:
        return ml_collections.ConfigDict(_lists_to_tuples(d))
    except (TypeError, ValueError, AttributeError) as e:   # e.g. keys ml_collections cannot hold
        raise DataError(f"{path} is damaged (not a config: {e}); restore it from a backup or start a new workdir") \
            from None


def _lists_to_tuples(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _lists_to_tuples(v) for k, v in x.items()}
    if isinstance(x, list):
        return tuple(_lists_to_tuples(v) for v in x)
    return x


def config_differences(saved: Any, new: Any, ignore: Sequence[str] = (),
                       prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted path, saved value, new value) for every leaf field that differs, except `ignore`d paths."""
    if isinstance(saved, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(saved) | set(new)):
            out += config_differences(saved.get(key), new.get(key), ignore, f"{prefix}{key}.")
        return out
    path = prefix.rstrip(".")
    return [] if saved == new or path in ignore else [(path, saved, new)]
