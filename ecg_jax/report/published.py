"""The reference's published numbers (published.json) beside ours: `ecg-jax tables --compare published`.

`load_published` reads ../shared/spec/published.json (or any file of its
layout). With published rows, every row of ours that has a published
counterpart is followed by the published row(s), labelled with their source
and protocol revision, and a row of our difference (`add_comparisons`; for the
final revision's four tables `add_final_comparisons`); a note under the table
says what those rows are.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

from ecg_jax.errors import ConfigError
from ecg_jax.names import METHOD_DISPLAY_NAMES
from ecg_jax.report import final
from ecg_jax.report.table import DECIMALS, MISSING, TABLE_METRICS, Table
from ecg_jax.results import ABLATION_DISPLAY_NAMES, ABLATION_METHODS, MAIN_TABLE_METHODS, display_name

# Where a clone keeps the published numbers: ../shared/spec/published.json beside it.
DEFAULT_PUBLISHED = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..",
                                                  "shared", "spec", "published.json"))
# protocol.md and published.json's "_about": the published FFT and DWT emb
# rows came from the "first" revision's emb mixing, the network rows from "paper".
PUBLISHED_REVISIONS = {"fft": "first", "dwt": "first"}
PUBLISHED_DEFAULT_REVISION = "paper"
PUBLISHED_LEVELS = (-4.0, -2.0, 0.0, 2.0, 4.0)
PUBLISHED_SPLIT = "reference"
# published.json section -> (noise type, the table kinds its rows may belong to, source note)
PUBLISHED_SECTIONS = {
    "emb": ("emb", ("main",), ""),
    "ablation_emb": ("emb", ("ablation",), ""),
    "emb_later_dancer_readme": ("emb", ("main", "ablation"), "later DANCER README"),
}
PUBLISHED_METRICS = {"snr_db": ("snr", "snr_std"), "rmse": ("rmse", "rmse_std")}
# published.json "final" section -> (table kind, README labels); "by_noise_at_-4" is read per noise type.
FINAL_SECTIONS = {"emb": ("final_emb", final.MAIN), "components": ("final_components", final.COMPONENTS),
                  "ablation": ("final_ablation", final.ABLATION)}
FINAL_BY_NOISE_SECTION = "by_noise_at_-4"


@dataclass(frozen=True)
class PublishedRow:
    """One published row: values (and stds where published) per metric at PUBLISHED_LEVELS."""

    noise_type: str
    kind: str
    method: str
    label: str                     # as published, e.g. "U-Net (DANCER README)"
    source: str                    # "DANCER README", "" when the label names none
    revision: str
    values: dict                   # metric -> tuple of 5 floats or None
    stds: dict                     # metric -> tuple of 5 floats or None (absent: not published)


# ---------------------------------------------------------------- reading published.json

def _names(kind: str) -> dict[str, str]:
    if kind == "ablation":
        return {ABLATION_DISPLAY_NAMES[m]: m for m in ABLATION_METHODS}
    return {display_name(m): m for m in MAIN_TABLE_METHODS}


def _match_published(label: str, kinds) -> tuple[str, str, str] | None:
    """(kind, method, source) of a published label: the label itself, or the label without a
    trailing "(...)" that names its source ("U-Net (DANCER README)")."""
    candidates = [(label, "")]
    m = re.match(r"^(.*?) \((.*)\)$", label)
    if m:
        candidates.append((m.group(1), m.group(2)))
    for kind in kinds:
        names = _names(kind)
        for name, src in candidates:
            if name in names:
                return kind, names[name], src
    return None


def _levels_list(value, where: str) -> tuple:
    if not isinstance(value, list) or len(value) != len(PUBLISHED_LEVELS):
        raise ValueError(f"{where}: expected a list of {len(PUBLISHED_LEVELS)} numbers")
    return tuple(None if v is None else float(v) for v in value)


def load_published(path: str) -> list[PublishedRow]:
    """The published rows of a published.json (../shared/spec/published.json layout: sections
    "emb", "ablation_emb", "emb_later_dancer_readme" of {label: {"snr": [5], "snr_std": [5],
    "rmse": [5]}} at input SNR -4, -2, 0, 2, 4 dB, and "final": see `final_published_rows`).
    Labels that name no method of ours are skipped.
    Raises ConfigError (one line) for a missing or malformed file."""
    if not os.path.isfile(path):
        raise ConfigError(f"no published numbers at {path} (give the file with --published=PATH)")
    try:
        with open(path) as f:
            data = json.load(f)
        out = final_published_rows(data.get("final", {}))
        for section, entries in data.items():
            if section.startswith("_") or section not in PUBLISHED_SECTIONS:
                continue
            noise_type, kinds, note = PUBLISHED_SECTIONS[section]
            for label, entry in entries.items():
                match = _match_published(label, kinds)
                if match is None:
                    continue
                kind, method, src = match
                src = ", ".join(x for x in (note, src) if x)
                values, stds = {}, {}
                for metric, (key, std_key) in PUBLISHED_METRICS.items():
                    if key in entry:
                        values[metric] = _levels_list(entry[key], f"{section}/{label}/{key}")
                    if std_key in entry:
                        stds[metric] = _levels_list(entry[std_key], f"{section}/{label}/{std_key}")
                revision = PUBLISHED_REVISIONS.get(method, PUBLISHED_DEFAULT_REVISION)
                out.append(PublishedRow(noise_type, kind, method, label, src, revision, values, stds))
        return out
    except (OSError, ValueError, AttributeError, TypeError) as e:
        raise ConfigError(f"{path}: not a published-numbers file ({e})") from None


def final_published_rows(section: dict) -> list[PublishedRow]:
    """published.json's "final" section: emb/components/ablation rows at -4..4 dB, and one row per
    (network, noise type) of "by_noise_at_-4" whose value sits at -4 dB (index 0)."""
    out = []
    for name, (kind, labels) in FINAL_SECTIONS.items():
        by_label = {label: m for m, label in labels.items()}
        for label, entry in section.get(name, {}).items():
            if label not in by_label:
                continue
            values = {metric: tuple(float(v) for v in entry[key]) for metric, (key, _) in
                      PUBLISHED_METRICS.items() if key in entry}
            out.append(PublishedRow("emb", kind, by_label[label], label, "final README", final.REVISION, values, {}))
    by_label = {label: m for m, label in final.MAIN.items()}
    for label, entry in section.get(FINAL_BY_NOISE_SECTION, {}).items():
        if label not in by_label:
            continue
        for noise in final.BY_NOISE_COLUMNS:
            values = {metric: (float(entry[key][noise]),) + (None,) * (len(final.LEVELS) - 1)
                      for metric, (key, _) in PUBLISHED_METRICS.items()
                      if noise in entry.get(key, {})}
            out.append(PublishedRow(noise, "final_by_noise", by_label[label], label, "final README",
                                    final.REVISION, values, {}))
    return out


# ---------------------------------------------------------------- main and ablation tables

def _published_text(values, stds, j: int) -> str:
    if values is None or values[j] is None:
        return MISSING
    text = f"{values[j]:.{DECIMALS}f}"
    if stds is not None and stds[j] is not None:
        text += f" ± {stds[j]:.{DECIMALS}f}"
    return text


def _published_name(p: PublishedRow) -> str:
    return p.label if not p.source or p.source in p.label else f"{p.label} ({p.source})"


def add_comparisons(table: Table, published: list[PublishedRow]) -> None:
    """Attach the published rows and our differences to the rows of a main or ablation `table`."""
    matched = set()
    for row in table.rows:
        for pub in published:
            if (pub.noise_type, pub.kind, pub.method) != (table.noise_type, table.kind, row.method):
                continue
            matched.add(_published_name(pub))
            index = [PUBLISHED_LEVELS.index(lv) if lv in PUBLISHED_LEVELS else None for lv in table.levels]
            shown, diff = {}, {}
            for metric, _, _ in TABLE_METRICS:
                values, stds = pub.values.get(metric), pub.stds.get(metric)
                shown[metric] = [MISSING if j is None else _published_text(values, stds, j) for j in index]
                diff[metric] = []
                for c, j in zip(row.cells[metric], index, strict=True):
                    if j is None or values is None or values[j] is None or c.rounded is None:
                        diff[metric].append(MISSING)
                    else:
                        diff[metric].append(f"{c.rounded - values[j]:+.{DECIMALS}f}")
            src = f" ({pub.source})" if pub.source else ""
            differ = []
            if row.revision != pub.revision:
                differ.append(f"revision: ours {row.revision}, published {pub.revision}")
            if table.split != PUBLISHED_SPLIT:
                differ.append(f"split: ours {table.split}, published {PUBLISHED_SPLIT}")
            if table.source != "physionet":
                differ.append(f"data: ours {table.source}")
            diff_label = "↳ Δ ours − published" + (f" (protocols differ: {'; '.join(differ)})" if differ else "")
            row.comparisons.append((f"↳ published{src} [revision {pub.revision}]", shown))
            row.comparisons.append((diff_label, diff))
    if matched:
        unmatched = sorted({_published_name(p) for p in published
                            if (p.noise_type, p.kind) == (table.noise_type, table.kind)} - matched)
        table.comparison_note = (
            "Published: the reference's README numbers (published.json), each under our row of the same "
            f"method, labelled with its source and protocol revision (network rows \"{PUBLISHED_DEFAULT_REVISION}\", "
            "FFT/DWT rows \"first\"); Δ = our value as shown − the published one, 4 decimals; "
            f"{MISSING} where either is missing.")
        if unmatched:
            table.comparison_note += f" Published rows without a result of ours here: {', '.join(unmatched)}."
    _note_own_networks(table)


def _note_own_networks(table: Table) -> None:
    """Say under the table that a network of your own (not a method of the benchmark: ecg_jax/models/
    external.py) has no published row, so its missing published cell is not taken for a lookup failure."""
    own = [row.label for row in table.rows if row.method not in METHOD_DISPLAY_NAMES]
    if own:
        text = (f"{', '.join(own)}: your own network{'s' if len(own) > 1 else ''}, not in the reference's README: "
                "no published numbers to compare with.")
        table.comparison_note = f"{table.comparison_note} {text}".strip()


# ---------------------------------------------------------------- the final revision's tables

def add_final_comparisons(table: Table, published: list[PublishedRow]) -> None:
    """Published row and our difference under each row of one of the final revision's tables
    (the final README's cells, one run each)."""
    by_method = {}
    for p in published:
        if p.revision == final.REVISION and p.kind == table.kind:
            by_method.setdefault(p.method, []).append(p)
    matched = 0
    for row in table.rows:
        pubs = by_method.get(row.method, [])
        if not pubs:
            continue
        matched += 1
        shown, diff = {}, {}
        for metric, _, _ in TABLE_METRICS:
            shown[metric], diff[metric] = [], []
            for j, cell in enumerate(row.cells[metric]):
                value = _final_published_value(pubs, metric, table, j)
                shown[metric].append(MISSING if value is None else f"{value:.4f}")
                ok = value is not None and cell.rounded is not None
                diff[metric].append(f"{cell.rounded - value:+.4f}" if ok else MISSING)
        differ = "" if table.source == "physionet" else f" (protocols differ: data: ours {table.source})"
        row.comparisons.append(("↳ published (final README, one run) [revision final]", shown))
        row.comparisons.append(("↳ Δ ours − published" + differ, diff))
    if matched:
        names = {p.label for p in published if p.revision == final.REVISION and p.kind == table.kind}
        ours = {pub.label for row in table.rows for pub in by_method.get(row.method, [])}
        table.comparison_note = (
            "Published: the reference's final README (published.json \"final\"), one run (seed 42) per cell, "
            "SNR to 2 decimals and RMSE to 4; Δ = our value as shown − the published one; "
            f"{MISSING} where either is missing.")
        if names - ours:
            unmatched = ", ".join(sorted(names - ours))
            table.comparison_note += f" Published rows without a result of ours here: {unmatched}."
    _note_own_networks(table)


def _final_published_value(pubs, metric: str, table: Table, j: int) -> float | None:
    """The published value of column `j`: by noise type in the by-noise table, else by input SNR."""
    if table.kind == "final_by_noise":
        noise = final.BY_NOISE_COLUMNS[j]
        for p in pubs:
            if p.noise_type == noise and p.values.get(metric) is not None:
                return p.values[metric][0]
        return None
    values = pubs[0].values.get(metric)
    level = table.levels[j]
    if values is None or level not in final.LEVELS:
        return None
    return values[final.LEVELS.index(level)]
