"""The benchmark's SNR/RMSE tables (HTML and Markdown) and the per-run CSV.

One table per noise type (emb, bw, ma, em) with methods as rows in the
protocol's order (FFT, DWT, EMD, the networks), plus the CIADNet ablation
table on emb. Rows of different split protocols or data sources are never
mixed: each (split, source) pair gets its own set of tables. Rows of several
protocol revisions ("paper", "first", "final") may share a table (the
published emb table mixes "first" FFT/DWT with "paper" networks): a method
scored under two revisions gets one row per revision, labelled with it when
the table holds more than one, and the caption names the revision of every
row.

Under each table a note says why cells or rows are empty when only part of
the grid was run (e.g. a smoke run's single SNR level). With published
numbers (`load_published`, scripts/make_tables.py --compare published) every
row that has a published counterpart is followed by the published row(s)
(labelled with their source and revision) and a row of our difference.

Which rows are used (`select_rows`): one row per run (`results.run_key`). A
network run may have been scored at several epochs (`scripts/evaluate.py
--epoch N` adds rows with `epochs: N`); by default the row of its final epoch
(the largest `epochs`) is used, with `epoch=N` only rows scored at epoch N
(baselines, which have no epochs, are always used). Captions say which epoch.

Cell rules (honest reporting):
  - trained methods (rows with a seed): mean ± sample std (ddof=1) over the
    runs, 4 decimals; a cell with a single run shows "mean (n=1)" since a
    standard deviation of one number does not exist;
  - deterministic methods (seed null): the single value;
  - a missing cell shows "—"; nothing is ever filled in;
  - diverged runs (`diverged: true`, or a non-finite SNR/RMSE) are left out
    of mean ± std even when their metrics are finite, and counted per method
    and cell in the caption ("U-Net at -4 dB (9 of 10 runs; 1 diverged)");
  - bold marks the best cell per column (highest SNR, lowest RMSE), compared
    on the means as displayed (rounded to 4 decimals), so ties are all bold.

runs.csv holds every selected row, diverged ones included (flagged), with
unique column names: `input_snr_db` (the dataset) and the metrics with their
units (`output_snr_db`, `rmse_mv`, ...; see CSV_METRIC_COLUMNS).
"""

from __future__ import annotations

import csv
import dataclasses
import html
import io
import json
import math
import os
import re
import statistics
from dataclasses import dataclass, field

from ecg_jax.config_utils import NOISE_TYPES, REVISIONS, SNR_LEVELS, SPLITS, write_text_atomic
from ecg_jax.errors import ConfigError
from ecg_jax.metrics import METRIC_NAMES
from ecg_jax.results import (ABLATION_DISPLAY_NAMES, ABLATION_METHODS, DATA_SOURCES, DEFAULT_REVISION,
                             MAIN_TABLE_METHODS, display_name, run_key)

MISSING = "—"
DECIMALS = 4
TABLE_METRICS = (("snr_db", "SNR(dB)", max), ("rmse", "RMSE", min))

NOISE_DESCRIPTIONS = {
    "emb": "emb (mixed noise: bw + em + ma)",
    "bw": "bw (baseline wander)",
    "ma": "ma (muscle artifact)",
    "em": "em (electrode motion)",
}
SPLIT_DESCRIPTIONS = {
    "reference": "reference protocol (window-level random 80/20 split; windows of one record "
                 "can fall in both train and test)",
    "inter_patient": "inter-patient protocol (records split 80/20; no record in both train and test)",
}
REVISION_DESCRIPTIONS = {
    "paper": "\"paper\" (the protocol of the published network rows; emb = bw + em + ma scaled as one noise)",
    "first": "\"first\" (the published FFT/DWT emb rows: emb = mean of bw, em, ma each scaled to the SNR "
             "on its own, so its effective input SNR is well above the nominal one)",
    "final": "\"final\" (the reference's last revision: its exact inter-patient draws, noise drawn per SNR, "
             "baselines on normalised windows)",
}
SOURCE_DESCRIPTIONS = {
    "physionet": "PhysioNet MIT-BIH Arrhythmia Database + MIT-BIH Noise Stress Test Database",
    "synthetic": "SYNTHETIC ECG and noise from the built-in generator (not PhysioNet; "
                 "not comparable with published numbers)",
}


@dataclass(frozen=True)
class Cell:
    """The summary of one (method, noise type, input SNR, metric) over its runs."""

    mean: float | None          # None: no finite run
    std: float | None           # sample std; None for deterministic or single-run cells
    n: int                      # runs in the mean (finite, not diverged)
    trained: bool
    bold: bool = False
    n_runs: int = 0             # runs of the cell, diverged ones included
    n_diverged: int = 0         # runs left out because they diverged

    @property
    def rounded(self) -> float | None:
        return None if self.mean is None else round(self.mean, DECIMALS)

    def text(self) -> str:
        if self.mean is None:
            return MISSING
        value = f"{self.mean:.{DECIMALS}f}"
        if not self.trained:
            return value
        if self.std is None:
            return f"{value} (n={self.n})"
        return f"{value} ± {self.std:.{DECIMALS}f}"


@dataclass
class TableRow:
    method: str
    label: str
    trained: bool                  # True when the runs have seeds (mean ± std cells)
    cells: dict[str, list[Cell]]   # metric -> one cell per SNR level
    epochs: tuple = ()             # the distinct epochs its rows were scored at (None: not recorded)
    revision: str = DEFAULT_REVISION
    # --compare published: (label, {metric: [text per level]}) rows shown under this one
    comparisons: list[tuple[str, dict[str, list[str]]]] = field(default_factory=list)


@dataclass
class Table:
    kind: str                      # "main" or "ablation"
    noise_type: str
    split: str
    source: str
    levels: tuple[float, ...]
    rows: list[TableRow]
    title: str = ""
    caption: str = ""
    run_counts: list[int] = field(default_factory=list)
    epoch: int | None = None       # the epoch asked for; None: each run's final epoch
    n_not_at_epoch: int = 0        # network runs without a row at `epoch` (not shown)
    note: str = ""                 # why some cells/rows are empty (shown under the table)
    comparison_note: str = ""      # what the published/difference rows are (with --compare)
    precisions: dict[str, list[str]] = field(default_factory=dict)   # network arithmetic -> row labels
    column_labels: tuple[str, ...] = ()  # headers when the columns are not input SNRs (final_tables)


def column_headers(table: Table) -> list[str]:
    return list(table.column_labels) or [_level_text(lv) for lv in table.levels]


def summarise(values: list[float], trained: bool) -> Cell:
    """Mean and sample std (ddof=1) of a cell's finite values."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return Cell(None, None, 0, trained)
    std = statistics.stdev(finite) if trained and len(finite) > 1 else None
    return Cell(statistics.fmean(finite), std, len(finite), trained)


def is_diverged(row: dict) -> bool:
    """A run left out of the tables' means: flagged `diverged`, or a non-finite table metric."""
    return bool(row.get("diverged")) or not all(math.isfinite(row["metrics"][m]) for m, _, _ in TABLE_METRICS)


def _epoch_rank(row: dict) -> tuple:
    epochs = row.get("epochs")
    return (0, 0) if epochs is None else (1, epochs)


def select_rows(rows: list[dict], epoch: int | None = None) -> list[dict]:
    """One row per run (`results.run_key`): the tables' input.

    `epoch=None`: each run's row of its final epoch (the largest `epochs`; a
    row without `epochs` only when the run has no other). `epoch=N`: network
    rows (with a seed) only where `epochs == N`; baselines (seed null) are
    kept whatever their epochs. Among rows of equal rank the later one wins
    (as in `results.read_rows`); the result keeps the input order.
    """
    best: dict[tuple, tuple[tuple, int, dict]] = {}
    for i, r in enumerate(rows):
        if epoch is not None and r["seed"] is not None and r.get("epochs") != epoch:
            continue
        key, rank = run_key(r), _epoch_rank(r)
        if key not in best or rank >= best[key][0]:
            best[key] = (rank, i, r)
    return [r for _, _, r in sorted(best.values(), key=lambda b: b[1])]


def network_epochs(rows: list[dict]) -> list[int]:
    """The distinct epochs network rows were scored at, ascending (for messages)."""
    return sorted({r["epochs"] for r in rows if r["seed"] is not None and r.get("epochs") is not None})


def _level_text(level: float) -> str:
    return f"{level:g}"


def group_by_protocol(rows: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """Rows by (split, source), in protocol order: results of different protocols never mix."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["split"], r["source"]), []).append(r)

    def order(key):
        split, source = key
        return (SPLITS.index(split) if split in SPLITS else len(SPLITS), split,
                DATA_SOURCES.index(source) if source in DATA_SOURCES else len(DATA_SOURCES), source)
    return {k: groups[k] for k in sorted(groups, key=order)}


def _cell(rows: list[dict], metric: str, trained: bool) -> Cell:
    kept = [r for r in rows if not is_diverged(r)]
    cell = summarise([r["metrics"][metric] for r in kept], trained)
    return dataclasses.replace(cell, n_runs=len(rows), n_diverged=len(rows) - len(kept))


def revision_of(row: dict) -> str:
    return row.get("revision", DEFAULT_REVISION)


def _revision_order(revision: str) -> tuple:
    return (REVISIONS.index(revision) if revision in REVISIONS else len(REVISIONS), revision)


def _build_table(kind: str, noise_type: str, split: str, source: str, levels: tuple[float, ...],
                 methods: list[str], labels: dict[str, str], rows: list[dict], epoch: int | None = None,
                 not_at_epoch: list[dict] = ()) -> Table:
    table_rows, run_counts = [], []
    ours = [r for r in rows if r["method"] in methods and r["noise_type"] == noise_type
            and float(r["snr_db"]) in levels]
    mixed = len({revision_of(r) for r in ours}) > 1
    run_levels = {float(r["snr_db"]) for r in ours}
    partial = []
    for method in methods:
        of_method = [r for r in ours if r["method"] == method]
        for revision in sorted({revision_of(r) for r in of_method}, key=_revision_order):
            mine = [r for r in of_method if revision_of(r) == revision]
            trained = any(r["seed"] is not None for r in mine)
            by_level = [[r for r in mine if float(r["snr_db"]) == lv] for lv in levels]
            cells = {metric: [_cell(at, metric, trained) for at in by_level] for metric, _, _ in TABLE_METRICS}
            if trained:
                run_counts += [c.n for c in cells["snr_db"] if c.n]
            epochs = tuple(sorted({r.get("epochs") for r in mine}, key=lambda e: (e is not None, e or 0)))
            label = labels.get(method, method) + (f" [{revision}]" if mixed else "")
            table_rows.append(TableRow(method, label, trained, cells, epochs, revision))
            not_run = [lv for lv, at in zip(levels, by_level) if not at and lv in run_levels]
            if not_run:
                partial.append(f"{label} at {_levels_text(not_run)} dB")
    _mark_best(table_rows, len(levels))
    n_missing = sum(1 for r in not_at_epoch if r["method"] in methods and r["noise_type"] == noise_type
                    and float(r["snr_db"]) in levels)
    table = Table(kind, noise_type, split, source, levels, table_rows, run_counts=run_counts,
                  epoch=epoch, n_not_at_epoch=n_missing, precisions=_precisions(ours, table_rows))
    what = NOISE_DESCRIPTIONS.get(noise_type, noise_type)
    title = what if kind == "main" else f"Ablation of CIADNet's shrinkage blocks, {what}"
    title += f" — {split} split, {source} data, " + _revisions_title(table_rows)
    if epoch is not None:
        title += f", networks at epoch {epoch}"
    table.title = title + (" (SYNTHETIC data)" if source == "synthetic" else "")
    table.caption = _caption(table)
    table.note = _empty_note(table, kind, levels, run_levels, partial, methods, labels)
    return table


# Rows each revision's tables are expected to have (protocol.md), for the
# note that lists the ones without results.
REVISION_METHODS = {
    "paper": ("fft", "dwt", "unet", "dacnn", "acdae", "ags_unet", "ciadnet", "dancer"),
    "first": ("fft", "dwt"),
    "final": ("dwt", "emd", "unet"),
}


def _levels_text(levels) -> str:
    return ", ".join(_level_text(lv) for lv in levels)


def _empty_note(table: Table, kind: str, levels, run_levels: set, partial: list[str], methods,
                labels: dict[str, str]) -> str:
    """Why cells or rows of a table are empty: SNR levels not run, rows not run at some levels,
    protocol methods without results."""
    parts = []
    empty = [lv for lv in levels if lv not in run_levels]
    if empty and run_levels:
        parts.append(f"Columns without numbers ({_levels_text(empty)} dB): these results scored only input "
                     f"SNR {_levels_text(sorted(run_levels))} dB (the runs' config snr_levels).")
    if partial:
        parts.append("Cells without numbers because that run did not score the level: "
                     + "; ".join(partial) + ".")
    present = {r.method for r in table.rows}
    if kind == "ablation":
        expected = list(ABLATION_METHODS)
    else:
        wanted = {m for r in table.rows for m in REVISION_METHODS.get(r.revision, ())}
        expected = [m for m in methods if m in wanted]
    missing = [labels.get(m, m) for m in expected if m not in present]
    if missing:
        parts.append(f"Rows without results (not run, or not in the results files read): {', '.join(missing)}.")
    return " ".join(parts)


def _mark_best(table_rows: list[TableRow], n_levels: int) -> None:
    for metric, _, pick in TABLE_METRICS:
        for j in range(n_levels):
            values = [r.cells[metric][j].rounded for r in table_rows]
            present = [v for v in values if v is not None]
            if not present:
                continue
            best = pick(present)
            for r, v in zip(table_rows, values):
                if v == best:
                    c = r.cells[metric][j]
                    r.cells[metric][j] = dataclasses.replace(c, bold=True)


def _revisions_title(table_rows: list[TableRow]) -> str:
    revisions = sorted({r.revision for r in table_rows}, key=_revision_order)
    return ("revision " if len(revisions) == 1 else "revisions ") + " + ".join(revisions)


def _revision_caption(table: Table) -> str:
    revisions = sorted({r.revision for r in table.rows}, key=_revision_order)
    if len(revisions) == 1:
        return f"Protocol revision: {REVISION_DESCRIPTIONS.get(revisions[0], revisions[0])}."
    parts = []
    for rev in revisions:
        names = ", ".join(r.label for r in table.rows if r.revision == rev)
        parts.append(f"{names}: {REVISION_DESCRIPTIONS.get(rev, rev)}")
    return "Protocol revisions (per row): " + "; ".join(parts) + "."


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _runs_text(table: Table) -> str:
    trained = [r.label for r in table.rows if r.trained]
    deterministic = [r.label for r in table.rows if not r.trained]
    parts = []
    if trained and not table.run_counts:
        parts.append("trained networks: no run with finite metrics")
    elif trained:
        lo, hi = min(table.run_counts), max(table.run_counts)
        runs = _plural(lo, "run") if lo == hi else f"{lo}–{hi} runs per cell (uneven)"
        parts.append(f"trained networks: mean ± sample std (ddof=1) over {runs}, one seed per run")
        if lo == 1:
            parts.append("a cell from a single run shows its value with (n=1)")
    if deterministic:
        parts.append(f"{', '.join(deterministic)}: deterministic, one value")
    return "; ".join(parts)


def _epochs_text(epochs) -> str:
    known = [e for e in epochs if e is not None]
    text = ""
    if known:
        text = str(known[0]) if len(known) == 1 else f"{known[0]}–{known[-1]}"
    if None in epochs:
        text = f"{text} and not recorded" if text else "not recorded"
    return text


def _epoch_caption(table: Table) -> str:
    trained = [r for r in table.rows if r.trained]
    if not trained and not table.n_not_at_epoch:
        return ""
    if table.epoch is not None:
        text = f"Networks scored at epoch {table.epoch}."
        if table.n_not_at_epoch:
            text += (f" {_plural(table.n_not_at_epoch, 'network run')} without a result at epoch "
                     f"{table.epoch} not shown.")
        return text
    every = sorted({e for r in trained for e in r.epochs}, key=lambda e: (e is not None, e or 0))
    if every == [None]:
        return "Networks: scoring epoch not recorded in the results."
    if len(every) == 1:
        return f"Networks scored at their final epoch ({every[0]})."
    per = ", ".join(f"{r.label} {_epochs_text(r.epochs)}" for r in trained)
    return f"Networks scored at each run's final epoch ({per})."


def _diverged_caption(table: Table) -> str:
    entries = []
    for r in table.rows:
        parts = [f"at {_level_text(lv)} dB ({c.n} of {_plural(c.n_runs, 'run')}; {c.n_diverged} diverged)"
                 for lv, c in zip(table.levels, r.cells["snr_db"]) if c.n_diverged]
        if parts:
            entries.append(f"{r.label} " + ", ".join(parts))
    if not entries:
        return ""
    return "Diverged runs are left out of mean ± std: " + "; ".join(entries) + "."


def precision_of(row: dict) -> str:
    """A network row's arithmetic (train.precision, and the emulated input rounding if any)."""
    text = row.get("precision", "not recorded")
    rounding = row.get("conv_input_rounding", "none")
    return text if rounding == "none" else f"{text}, inputs rounded to {rounding} (CPU emulation)"


def _precisions(rows: list[dict], table_rows: list[TableRow]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for tr in table_rows:
        if not tr.trained:
            continue
        for p in sorted({precision_of(r) for r in rows if r["method"] == tr.method and r["seed"] is not None
                         and revision_of(r) == tr.revision}):
            out.setdefault(p, []).append(tr.label)
    return out


def _precision_caption(table: Table) -> str:
    if len(table.precisions) == 1:
        return f"Network arithmetic: train.precision={next(iter(table.precisions))}."
    parts = [f"{p} ({', '.join(labels)})" for p, labels in table.precisions.items()]
    return "Network arithmetic (per row): train.precision=" + "; ".join(parts) + "."


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def _caption(table: Table) -> str:
    what = (f"Noise type {NOISE_DESCRIPTIONS.get(table.noise_type, table.noise_type)}" if table.kind == "main"
            else f"Ablation on {NOISE_DESCRIPTIONS.get(table.noise_type, table.noise_type)}")
    text = (f"{what}. Output SNR (dB, higher is better) and RMSE (mV, lower is better) at each "
            f"input SNR (dB). {_upper_first(_runs_text(table))}; 4 decimals; best per column in bold; "
            f"{MISSING} = no result.")
    for extra in (_epoch_caption(table), _diverged_caption(table)):
        if extra:
            text += " " + extra
    text += (f" {_revision_caption(table)} Split: {SPLIT_DESCRIPTIONS.get(table.split, table.split)}. "
             f"Data: {SOURCE_DESCRIPTIONS.get(table.source, table.source)}.")
    if table.precisions:
        text += " " + _precision_caption(table)
    if table.source == "synthetic":
        text = "SYNTHETIC data — " + text
    return text


def build_tables(rows: list[dict], epoch: int | None = None,
                 published: list[PublishedRow] | None = None) -> list[Table]:
    """Main tables (emb, bw, ma, em) and the ablation table, per (split, source).

    Each run contributes one row (see `select_rows`): its final epoch's, or
    with `epoch=N` its row scored at epoch N. With `published` (see
    `load_published`) each row with published numbers is followed by them and
    by our difference.
    """
    # The final revision's rows get the layout of its own README (ecg_jax/final_tables.py,
    # which builds on this module's pieces, hence imported here).
    from ecg_jax import final_tables

    tables = []
    for (split, source), group in group_by_protocol(rows).items():
        final_group = [r for r in group if final_tables.is_final(r)]
        group = [r for r in group if not final_tables.is_final(r)]
        if final_group:
            chosen = select_rows(final_group, epoch)
            have = {run_key(r) for r in chosen}
            missing = select_rows([r for r in final_group if run_key(r) not in have]) if epoch is not None else []
            tables += final_tables.build_final_tables(chosen, split, source, epoch, missing, published)
        if not group:
            continue
        chosen = select_rows(group, epoch)
        not_at_epoch = []
        if epoch is not None:
            have = {run_key(r) for r in chosen}
            not_at_epoch = select_rows([r for r in group if run_key(r) not in have])
        levels = tuple(sorted({float(s) for s in SNR_LEVELS} | {float(r["snr_db"]) for r in group}))
        known = set(MAIN_TABLE_METHODS) | set(ABLATION_METHODS)
        others = sorted({r["method"] for r in group} - known)
        main_methods = list(MAIN_TABLE_METHODS) + others
        main_labels = {m: display_name(m) for m in main_methods}
        present_types = {r["noise_type"] for r in chosen}
        noise_types = [t for t in NOISE_TYPES if t in present_types]
        first_main = True
        for nt in noise_types:
            table = _build_table("main", nt, split, source, levels, main_methods, main_labels, chosen,
                                 epoch, not_at_epoch)
            if table.rows:
                absent = [t for t in NOISE_TYPES if t not in present_types]
                if first_main and absent:
                    table.note = (table.note + " " if table.note else "") + (
                        f"No tables for {', '.join(absent)}: these results hold no run with those noise "
                        f"types (a run scores its config's noise_types).")
                first_main = False
                tables.append(table)
        ablation_only = set(ABLATION_METHODS) - set(MAIN_TABLE_METHODS)
        if any(r["method"] in ablation_only and r["noise_type"] == "emb" for r in chosen):
            tables.append(_build_table("ablation", "emb", split, source, levels, list(ABLATION_METHODS),
                                       ABLATION_DISPLAY_NAMES, chosen, epoch, not_at_epoch))
    if published is not None:
        for table in tables:
            if not table.kind.startswith("final"):
                add_comparisons(table, published)
    return tables


# ---------------------------------------------------------------- published numbers

# protocol.md and published.json's "_about": the published FFT and DWT emb
# rows came from the "first" revision's emb mixing, the network rows from "paper".
# Where a clone keeps the published numbers: ../shared/spec/published.json beside it.
DEFAULT_PUBLISHED = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                                  "shared", "spec", "published.json"))
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
    "rmse": [5]}} at input SNR -4, -2, 0, 2, 4 dB). Labels that name no method of ours are skipped.
    Raises ConfigError (one line) for a missing or malformed file."""
    if not os.path.isfile(path):
        raise ConfigError(f"no published numbers at {path} (give the file with --published=PATH)")
    try:
        with open(path) as f:
            data = json.load(f)
        from ecg_jax import final_tables  # see build_tables

        out = final_tables.published_rows(data.get("final", {}), PublishedRow)
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
    """Attach the published rows and our differences to the rows of `table` that have some."""
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
                for c, j in zip(row.cells[metric], index):
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


# ---------------------------------------------------------------- rendering

def _html_table(table: Table) -> str:
    n = len(table.levels)
    esc = html.escape
    caption = esc(table.caption)
    if table.source == "synthetic":
        caption = caption.replace("SYNTHETIC data", "<b>SYNTHETIC data</b>", 1)
    lines = ["<table>", f"  <caption>{caption}</caption>", "  <thead>",
             "    <tr>", '      <th rowspan="2">Method</th>']
    lines += [f'      <th colspan="{n}">{esc(name)}</th>' for _, name, _ in TABLE_METRICS]
    lines += ["    </tr>", "    <tr>"]
    lines += [f"      <th>{esc(h)}</th>" for _ in TABLE_METRICS for h in column_headers(table)]
    lines += ["    </tr>", "  </thead>", "  <tbody>"]
    for r in table.rows:
        cells = [c for metric, _, _ in TABLE_METRICS for c in r.cells[metric]]
        tds = "".join(f"<td>{_html_cell(c)}</td>" for c in cells)
        lines.append(f"    <tr><td>{esc(r.label)}</td>{tds}</tr>")
        for label, texts in r.comparisons:
            tds = "".join(f"<td>{esc(x)}</td>" for metric, _, _ in TABLE_METRICS for x in texts[metric])
            lines.append(f'    <tr class="published"><td>{esc(label)}</td>{tds}</tr>')
    lines += ["  </tbody>", "</table>"]
    if table.comparison_note:
        lines.append(f'<p class="note">{esc(table.comparison_note)}</p>')
    if table.note:
        lines.append(f'<p class="note">Note: {esc(table.note)}</p>')
    return "\n".join(lines)


def _html_cell(c: Cell) -> str:
    text = html.escape(c.text())
    return f"<b>{text}</b>" if c.bold else text


def render_html(tables: list[Table]) -> str:
    """A small standalone HTML page: each table with a heading and its caption."""
    body = []
    for t in tables:
        body += [f"<h3>{html.escape(t.title)}</h3>", _html_table(t), ""]
    if not tables:
        body.append("<p>No results.</p>")
    head = ('<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n<title>ecg-jax results</title>\n'
            "<style>table{border-collapse:collapse;margin-bottom:1em}"
            "th,td{border:1px solid #999;padding:2px 6px;text-align:center}"
            "caption{caption-side:top;text-align:left;max-width:60em}"
            "tr.published td{color:#555;font-style:italic}p.note{max-width:60em}</style>\n</head>\n<body>\n")
    return head + "\n".join(body) + "\n</body>\n</html>\n"


def render_markdown(tables: list[Table]) -> str:
    """Markdown tables; one header row ("SNR(dB) -4", ..., "RMSE 4") since Markdown has no rowspan."""
    out = []
    for t in tables:
        caption = t.caption
        if t.source == "synthetic":
            caption = caption.replace("SYNTHETIC data", "**SYNTHETIC data**", 1)
        header = ["Method"] + [f"{name} {h}" for _, name, _ in TABLE_METRICS for h in column_headers(t)]
        out += [f"### {t.title}", "", caption, "",
                "| " + " | ".join(header) + " |",
                "|" + "---|" + "---:|" * (len(header) - 1)]
        for r in t.rows:
            cells = [c for metric, _, _ in TABLE_METRICS for c in r.cells[metric]]
            texts = [f"**{c.text()}**" if c.bold else c.text() for c in cells]
            out.append("| " + " | ".join([r.label] + texts) + " |")
            for label, comp in r.comparisons:
                out.append("| " + " | ".join([label] + [x for metric, _, _ in TABLE_METRICS
                                                        for x in comp[metric]]) + " |")
        out.append("")
        if t.comparison_note:
            out += [t.comparison_note, ""]
        if t.note:
            out += [f"*Note:* {t.note}", ""]
    if not tables:
        out.append("No results.")
    return "\n".join(out) + "\n"


# runs.csv: unique, self-explaining column names; the metrics carry their unit.
CSV_METRIC_COLUMNS = {
    "snr_db": "output_snr_db",
    "rmse": "rmse_mv",
    "snr_improvement_db": "snr_improvement_db",
    "prd": "prd_percent",
    "ssd": "ssd_mv2",
    "mad": "mad_mv",
    "cosine": "cosine",
}
CSV_RUN_COLUMNS = ("method", "display_name", "noise_type", "input_snr_db", "seed", "split", "source",
                   "revision", "epochs", "diverged")


def _csv_value(v) -> object:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v, sort_keys=True, default=str)
    return v


def runs_csv_columns(rows: list[dict]) -> list[str]:
    """The header of runs.csv: run fields, metrics (with units), then any extra keys of the rows
    (an extra key whose name is taken gets an "extra_" prefix)."""
    columns = list(CSV_RUN_COLUMNS) + [CSV_METRIC_COLUMNS.get(m, m) for m in METRIC_NAMES]
    for k in _extra_keys(rows):
        name = k
        while name in columns:
            name = "extra_" + name
        columns.append(name)
    return columns


def _extra_keys(rows: list[dict]) -> list[str]:
    handled = {"method", "noise_type", "snr_db", "seed", "split", "source", "revision", "metrics", "epochs",
               "diverged"}
    return sorted({k for r in rows for k in r} - handled)


def runs_csv_text(rows: list[dict]) -> str:
    """Each given row as one CSV line (see `runs_csv_columns`).

    `input_snr_db` is the dataset's input SNR, `output_snr_db` the denoised
    output's SNR; `epochs` is the epoch the run was scored at (empty for
    baselines) and `diverged` is true/false (diverged runs are listed, but
    left out of the tables' means).
    """
    extra = _extra_keys(rows)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(runs_csv_columns(rows))
    for r in rows:
        values = [r["method"], display_name(r["method"]), r["noise_type"], r["snr_db"],
                  "" if r["seed"] is None else r["seed"], r["split"], r["source"], revision_of(r),
                  _csv_value(r.get("epochs")), _csv_value(is_diverged(r))]
        values += [repr(float(r["metrics"][m])) for m in METRIC_NAMES]
        values += [_csv_value(r.get(k)) for k in extra]
        writer.writerow(values)
    return buf.getvalue()


def write_runs_csv(rows: list[dict], path: str) -> str:
    write_text_atomic(path, runs_csv_text(rows))
    return path


def write_tables(rows: list[dict], out_dir: str, epoch: int | None = None,
                 published: list[PublishedRow] | None = None) -> dict[str, str]:
    """tables.html, tables.md and runs.csv in `out_dir`; returns {"html", "markdown", "csv"} paths.

    Each run contributes its final epoch's row, or with `epoch=N` its row
    scored at epoch N (see `select_rows`); runs.csv lists exactly those rows,
    diverged ones included.
    """
    tables = build_tables(rows, epoch=epoch, published=published)
    paths = {"html": os.path.join(out_dir, "tables.html"),
             "markdown": os.path.join(out_dir, "tables.md"),
             "csv": os.path.join(out_dir, "runs.csv")}
    write_text_atomic(paths["html"], render_html(tables))
    write_text_atomic(paths["markdown"], render_markdown(tables))
    write_runs_csv(select_rows(rows, epoch), paths["csv"])
    return paths
