"""A hyperparameter sweep in the report: the point chosen on validation, and every point's scores.

Rows of a sweep's members carry `sweep_point` (its name) and `validation_metrics`
(the held-out training records, data/validation.py). For each network and
dataset (and protocol), the chosen point is the one with the highest mean
validation output SNR over its seeds (ties: the first in the rows' order); the
test set plays no part in the choice. The main tables and figures use the
chosen point's rows only (`keep_chosen_points`, applied by select.select_rows)
and say so in the caption (`sweep_note`); the sweep table (`sweep_markdown`)
and figure (figures.plot_sweep) show every point, validation beside test.
"""

from __future__ import annotations

import math
import statistics
from typing import Iterable

from ecg_jax.results import DEFAULT_REVISION, display_name

CHOICE_METRIC = "snr_db"   # higher is better; the protocol's headline metric


def is_sweep_row(row: dict) -> bool:
    return bool(row.get("sweep_point"))


def group_key(row: dict) -> tuple:
    """The runs a point is chosen among: one network on one dataset under one protocol, every seed."""
    return (row["method"], row["noise_type"], float(row["snr_db"]), row["split"], row["source"],
            row.get("revision", DEFAULT_REVISION))


def mean_std(values: list[float]) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return math.nan, math.nan
    return statistics.fmean(finite), statistics.stdev(finite) if len(finite) > 1 else 0.0


def point_scores(rows: Iterable[dict]) -> dict[tuple, dict[str, dict]]:
    """{group: {point: {"validation": [...], "test": [...], "rows": [...]}}} of the sweep rows, in row order."""
    out: dict[tuple, dict[str, dict]] = {}
    for r in rows:
        if not is_sweep_row(r):
            continue
        entry = out.setdefault(group_key(r), {}).setdefault(r["sweep_point"], {"validation": [], "test": [],
                                                                              "rows": []})
        validation = r.get("validation_metrics") or {}
        entry["validation"].append(float(validation.get(CHOICE_METRIC, math.nan)))
        entry["test"].append(float(r["metrics"][CHOICE_METRIC]))
        entry["rows"].append(r)
    return out


def chosen_points(rows: Iterable[dict]) -> dict[tuple, str]:
    """{group: the point with the best mean validation SNR}; a group whose rows have no validation
    scores chooses nothing (its rows are all kept, and the caption says so)."""
    chosen = {}
    for group, points in point_scores(rows).items():
        means = {p: mean_std(s["validation"])[0] for p, s in points.items()}
        finite = {p: m for p, m in means.items() if math.isfinite(m)}
        if finite:
            chosen[group] = max(finite, key=lambda p: (finite[p], -list(points).index(p)))
    return chosen


def keep_chosen_points(rows: list[dict]) -> list[dict]:
    """`rows` with each sweep's other points left out; the kept sweep rows are marked `sweep_chosen`."""
    chosen = chosen_points(rows)
    out = []
    for r in rows:
        if not is_sweep_row(r):
            out.append(r)
        elif chosen.get(group_key(r)) == r["sweep_point"]:
            out.append({**r, "sweep_chosen": True})
    return out


def sweep_note(rows: Iterable[dict]) -> str:
    """The caption sentence of a table whose rows include a sweep's chosen points ("" if none)."""
    chosen = {}
    for r in rows:
        if r.get("sweep_chosen"):
            chosen.setdefault(display_name(r["method"], [r]), set()).add(r["sweep_point"])
    if not chosen:
        return ""
    parts = [f"{name}: {', '.join(sorted(points))}" for name, points in chosen.items()]
    return ("Swept networks are shown at the point chosen by the mean validation SNR of held-out training "
            f"records (never the test set): {'; '.join(parts)}. Every point: sweep.md.")


def _cell(values: list[float]) -> str:
    mean, std = mean_std(values)
    return "—" if not math.isfinite(mean) else f"{mean:.4f} ± {std:.4f}"


def sweep_markdown(rows: list[dict]) -> str:
    """The sweep table: every point of every swept network and dataset, validation and test SNR
    (mean ± std over seeds), the chosen point marked; "" when no row is a sweep member."""
    scores = point_scores(rows)
    if not scores:
        return ""
    chosen = chosen_points(rows)
    lines = ["## Hyperparameter sweep", "",
             "Each point's output SNR (dB), mean ± std over its seeds, on the validation split (held-out "
             "training records) and on the test set. ✓ marks the point chosen on validation, the one the "
             "main tables show.", ""]
    for group, points in scores.items():
        method, noise_type, snr_db, split, source, revision = group
        some_row = next(iter(points.values()))["rows"][0]
        lines += [f"### {display_name(method, [some_row])}, {noise_type} {snr_db:g} dB ({split}, {source}, "
                  f"{revision})", "", "| point | seeds | validation SNR (dB) | test SNR (dB) | chosen |",
                  "| --- | --- | --- | --- | --- |"]
        for point, s in points.items():
            mark = "✓" if chosen.get(group) == point else ""
            lines.append(f"| {point} | {len(s['test'])} | {_cell(s['validation'])} | {_cell(s['test'])} | {mark} |")
        lines.append("")
    return "\n".join(lines)


def numeric_axes(rows: Iterable[dict]) -> list[str]:
    """Swept fields with one number per point (a schedule's list is not plotted)."""
    values: dict[str, set] = {}
    for r in rows:
        for name, v in (r.get("sweep") or {}).items():
            values.setdefault(name, set()).add(v if not isinstance(v, list) else None)
    return [n for n, vs in values.items() if None not in vs and len(vs) > 1]
