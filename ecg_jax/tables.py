"""The benchmark's SNR/RMSE tables (HTML and Markdown) and the per-run CSV.

One table per noise type (emb, bw, ma, em) with methods as rows in the
protocol's order, plus the CIADNet ablation table on emb. Rows of different
split protocols or data sources are never mixed: each (split, source) pair
gets its own set of tables.

Cell rules (honest reporting):
  - trained methods (rows with a seed): mean ± sample std (ddof=1) over the
    runs, 4 decimals; a cell with a single run shows "mean (n=1)" since a
    standard deviation of one number does not exist;
  - deterministic methods (seed null): the single value;
  - a missing cell shows "—"; nothing is ever filled in;
  - runs with a non-finite metric (diverged) are left out of that cell and
    counted in the caption;
  - bold marks the best cell per column (highest SNR, lowest RMSE), compared
    on the means as displayed (rounded to 4 decimals), so ties are all bold.
"""

from __future__ import annotations

import csv
import dataclasses
import html
import io
import math
import os
import statistics
from dataclasses import dataclass, field

from ecg_jax.config_utils import NOISE_TYPES, SNR_LEVELS, SPLITS, write_text_atomic
from ecg_jax.metrics import METRIC_NAMES
from ecg_jax.results import (ABLATION_DISPLAY_NAMES, ABLATION_METHODS, DATA_SOURCES,
                             MAIN_TABLE_METHODS, display_name)

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
    n: int                      # finite runs
    trained: bool
    bold: bool = False

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


def summarise(values: list[float], trained: bool) -> Cell:
    """Mean and sample std (ddof=1) of a cell's finite values."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return Cell(None, None, 0, trained)
    std = statistics.stdev(finite) if trained and len(finite) > 1 else None
    return Cell(statistics.fmean(finite), std, len(finite), trained)


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


def _build_table(kind: str, noise_type: str, split: str, source: str, levels: tuple[float, ...],
                 methods: list[str], labels: dict[str, str], rows: list[dict]) -> Table:
    table_rows, run_counts, n_excluded = [], [], 0
    for method in methods:
        mine = [r for r in rows if r["method"] == method and r["noise_type"] == noise_type]
        if not mine:
            continue
        trained = any(r["seed"] is not None for r in mine)
        cells: dict[str, list[Cell]] = {}
        for metric, _, _ in TABLE_METRICS:
            cells[metric] = [summarise([r["metrics"][metric] for r in mine if float(r["snr_db"]) == lv],
                                       trained) for lv in levels]
        if trained:
            run_counts += [c.n for c in cells["snr_db"] if c.n]
        n_excluded += sum(1 for r in mine if float(r["snr_db"]) in levels and not all(
            math.isfinite(r["metrics"][m]) for m, _, _ in TABLE_METRICS))
        table_rows.append(TableRow(method, labels.get(method, method), trained, cells))
    _mark_best(table_rows, len(levels))
    table = Table(kind, noise_type, split, source, levels, table_rows, run_counts=run_counts)
    what = NOISE_DESCRIPTIONS.get(noise_type, noise_type)
    title = what if kind == "main" else f"Ablation of CIADNet's shrinkage blocks, {what}"
    title += f" — {split} split, {source} data"
    table.title = title + (" (SYNTHETIC data)" if source == "synthetic" else "")
    table.caption = _caption(table, n_excluded)
    return table


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


def _runs_text(table: Table) -> str:
    trained = [r.label for r in table.rows if r.trained]
    deterministic = [r.label for r in table.rows if not r.trained]
    parts = []
    if trained and not table.run_counts:
        parts.append("trained networks: no run with finite metrics")
    elif trained:
        lo, hi = min(table.run_counts), max(table.run_counts)
        runs = f"{lo} run{'s' if lo != 1 else ''}" if lo == hi else f"{lo}–{hi} runs per cell (uneven)"
        parts.append(f"trained networks: mean ± sample std (ddof=1) over {runs}, one seed per run")
        if lo == 1:
            parts.append("a cell from a single run shows its value with (n=1)")
    if deterministic:
        parts.append(f"{', '.join(deterministic)}: deterministic, one value")
    return "; ".join(parts)


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def _caption(table: Table, n_excluded: int) -> str:
    what = (f"Noise type {NOISE_DESCRIPTIONS.get(table.noise_type, table.noise_type)}" if table.kind == "main"
            else f"Ablation on {NOISE_DESCRIPTIONS.get(table.noise_type, table.noise_type)}")
    text = (f"{what}. Output SNR (dB, higher is better) and RMSE (mV, lower is better) at each "
            f"input SNR (dB). {_upper_first(_runs_text(table))}; 4 decimals; best per column in bold; "
            f"{MISSING} = no result. Split: {SPLIT_DESCRIPTIONS.get(table.split, table.split)}. "
            f"Data: {SOURCE_DESCRIPTIONS.get(table.source, table.source)}.")
    if n_excluded:
        text += f" {n_excluded} run(s) with non-finite metrics (diverged) are left out."
    if table.source == "synthetic":
        text = "SYNTHETIC data — " + text
    return text


def build_tables(rows: list[dict]) -> list[Table]:
    """Main tables (emb, bw, ma, em) and the ablation table, per (split, source)."""
    tables = []
    for (split, source), group in group_by_protocol(rows).items():
        levels = tuple(sorted({float(s) for s in SNR_LEVELS} | {float(r["snr_db"]) for r in group}))
        known = set(MAIN_TABLE_METHODS) | set(ABLATION_METHODS)
        others = sorted({r["method"] for r in group} - known)
        main_methods = list(MAIN_TABLE_METHODS) + others
        main_labels = {m: display_name(m) for m in main_methods}
        present_types = {r["noise_type"] for r in group}
        noise_types = [t for t in NOISE_TYPES if t in present_types]
        for nt in noise_types:
            table = _build_table("main", nt, split, source, levels, main_methods, main_labels, group)
            if table.rows:
                tables.append(table)
        ablation_only = set(ABLATION_METHODS) - set(MAIN_TABLE_METHODS)
        if any(r["method"] in ablation_only and r["noise_type"] == "emb" for r in group):
            tables.append(_build_table("ablation", "emb", split, source, levels,
                                       list(ABLATION_METHODS), ABLATION_DISPLAY_NAMES, group))
    return tables


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
    lines += [f"      <th>{_level_text(lv)}</th>" for _ in TABLE_METRICS for lv in table.levels]
    lines += ["    </tr>", "  </thead>", "  <tbody>"]
    for r in table.rows:
        cells = [c for metric, _, _ in TABLE_METRICS for c in r.cells[metric]]
        tds = "".join(f"<td>{_html_cell(c)}</td>" for c in cells)
        lines.append(f"    <tr><td>{esc(r.label)}</td>{tds}</tr>")
    lines += ["  </tbody>", "</table>"]
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
            "caption{caption-side:top;text-align:left;max-width:60em}</style>\n</head>\n<body>\n")
    return head + "\n".join(body) + "\n</body>\n</html>\n"


def render_markdown(tables: list[Table]) -> str:
    """Markdown tables; one header row ("SNR(dB) -4", ..., "RMSE 4") since Markdown has no rowspan."""
    out = []
    for t in tables:
        caption = t.caption
        if t.source == "synthetic":
            caption = caption.replace("SYNTHETIC data", "**SYNTHETIC data**", 1)
        header = ["Method"] + [f"{name} {_level_text(lv)}" for _, name, _ in TABLE_METRICS
                               for lv in t.levels]
        out += [f"### {t.title}", "", caption, "",
                "| " + " | ".join(header) + " |",
                "|" + "---|" + "---:|" * (len(header) - 1)]
        for r in t.rows:
            cells = [c for metric, _, _ in TABLE_METRICS for c in r.cells[metric]]
            texts = [f"**{c.text()}**" if c.bold else c.text() for c in cells]
            out.append("| " + " | ".join([r.label] + texts) + " |")
        out.append("")
    if not tables:
        out.append("No results.")
    return "\n".join(out) + "\n"


def runs_csv_text(rows: list[dict]) -> str:
    """Every run as one CSV line: all fields, the metrics flattened, then any extra keys."""
    core = ["method", "display_name", "noise_type", "snr_db", "seed", "split", "source"]
    extra = sorted({k for r in rows for k in r} - set(core) - {"metrics"})
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(core + list(METRIC_NAMES) + extra)
    for r in rows:
        values = [r["method"], display_name(r["method"]), r["noise_type"], r["snr_db"],
                  "" if r["seed"] is None else r["seed"], r["split"], r["source"]]
        values += [repr(float(r["metrics"][m])) for m in METRIC_NAMES]
        values += ["" if r.get(k) is None else r[k] for k in extra]
        writer.writerow(values)
    return buf.getvalue()


def write_runs_csv(rows: list[dict], path: str) -> str:
    write_text_atomic(path, runs_csv_text(rows))
    return path


def write_tables(rows: list[dict], out_dir: str) -> dict[str, str]:
    """tables.html, tables.md and runs.csv in `out_dir`; returns {"html", "markdown", "csv"} paths."""
    tables = build_tables(rows)
    paths = {"html": os.path.join(out_dir, "tables.html"),
             "markdown": os.path.join(out_dir, "tables.md"),
             "csv": os.path.join(out_dir, "runs.csv")}
    write_text_atomic(paths["html"], render_html(tables))
    write_text_atomic(paths["markdown"], render_markdown(tables))
    write_runs_csv(rows, paths["csv"])
    return paths
