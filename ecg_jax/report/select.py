"""Which result rows the tables use, and how they become cells.

Which rows are used (`select_rows`): one row per run (`results.run_key`). A
network run may have been scored at several epochs (`ecg-jax evaluate
--epoch N` adds rows with `epochs: N`); by default the row of its final epoch
(the largest `epochs`) is used, with `epoch=N` only rows scored at epoch N
(baselines, which have no epochs, are always used). Rows of different split
protocols or data sources are never mixed (`group_by_protocol`).

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

`build_table` turns the chosen rows into one table of methods x input SNRs;
build.py decides which tables there are.
"""

from __future__ import annotations

import dataclasses
import math
import statistics

from ecg_jax.config_utils import SPLITS
from ecg_jax.report import captions
from ecg_jax.report.sweeps import keep_chosen_points
from ecg_jax.report.table import TABLE_METRICS, Cell, Table, TableRow, levels_text, revision_order
from ecg_jax.results import DATA_SOURCES, DEFAULT_REVISION, run_key

# ---------------------------------------------------------------- rows

def is_diverged(row: dict) -> bool:
    """A run left out of the tables' means: flagged `diverged`, or a non-finite table metric."""
    return bool(row.get("diverged")) or not all(math.isfinite(row["metrics"][m]) for m, _, _ in TABLE_METRICS)


def revision_of(row: dict) -> str:
    return row.get("revision", DEFAULT_REVISION)


def precision_of(row: dict) -> str:
    """A network row's arithmetic (train.precision, and the emulated input rounding if any)."""
    text = row.get("precision", "not recorded")
    rounding = row.get("conv_input_rounding", "none")
    return text if rounding == "none" else f"{text}, inputs rounded to {rounding} (CPU emulation)"


def _epoch_rank(row: dict) -> tuple:
    epochs = row.get("epochs")
    return (0, 0) if epochs is None else (1, epochs)


def select_rows(rows: list[dict], epoch: int | None = None, all_points: bool = False) -> list[dict]:
    """One row per run (`results.run_key`): the tables' input.

    `epoch=None`: each run's row of its final epoch (the largest `epochs`; a
    row without `epochs` only when the run has no other). `epoch=N`: network
    rows (with a seed) only where `epochs == N`; baselines (seed null) are
    kept whatever their epochs. Among rows of equal rank the later one wins
    (as in `results.read_rows`); the result keeps the input order. Of a
    hyperparameter sweep, only the point chosen on validation is kept.
    """
    best: dict[tuple, tuple[tuple, int, dict]] = {}
    for i, r in enumerate(rows):
        if epoch is not None and r["seed"] is not None and r.get("epochs") != epoch:
            continue
        key, rank = run_key(r), _epoch_rank(r)
        if key not in best or rank >= best[key][0]:
            best[key] = (rank, i, r)
    chosen = [r for _, _, r in sorted(best.values(), key=lambda b: b[1])]
    # A sweep contributes the point chosen on validation only (report/sweeps.py), unless `all_points`.
    return chosen if all_points else keep_chosen_points(chosen)


def runs_not_at_epoch(rows: list[dict], chosen: list[dict]) -> list[dict]:
    """The runs of `rows` that `chosen` (rows selected at one epoch) lacks, at their final epoch."""
    have = {run_key(r) for r in chosen}
    return select_rows([r for r in rows if run_key(r) not in have])


def network_epochs(rows: list[dict]) -> list[int]:
    """The distinct epochs network rows were scored at, ascending (for messages)."""
    return sorted({r["epochs"] for r in rows if r["seed"] is not None and r.get("epochs") is not None})


def scored_epochs(rows: list[dict]) -> tuple:
    """The distinct `epochs` of rows, ascending, None (not recorded) first."""
    return tuple(sorted({r.get("epochs") for r in rows}, key=lambda e: (e is not None, e or 0)))


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


# ---------------------------------------------------------------- cells

def summarise(values: list[float], trained: bool) -> Cell:
    """Mean and sample std (ddof=1) of a cell's finite values."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return Cell(None, None, 0, trained)
    std = statistics.stdev(finite) if trained and len(finite) > 1 else None
    return Cell(statistics.fmean(finite), std, len(finite), trained)


def cell_of(rows: list[dict], metric: str, trained: bool) -> Cell:
    """One cell from the rows of its runs: diverged runs counted, but left out of the summary."""
    kept = [r for r in rows if not is_diverged(r)]
    cell = summarise([r["metrics"][metric] for r in kept], trained)
    return dataclasses.replace(cell, n_runs=len(rows), n_diverged=len(rows) - len(kept))


def mark_best(table_rows: list[TableRow], n_columns: int) -> None:
    """Bold the best cell(s) of every column, compared as displayed (rounded)."""
    for metric, _, pick in TABLE_METRICS:
        for j in range(n_columns):
            values = [r.cells[metric][j].rounded for r in table_rows]
            present = [v for v in values if v is not None]
            if not present:
                continue
            best = pick(present)
            for r, v in zip(table_rows, values, strict=True):
                if v == best:
                    c = r.cells[metric][j]
                    r.cells[metric][j] = dataclasses.replace(c, bold=True)


def precisions(rows: list[dict], table_rows: list[TableRow]) -> dict[str, list[str]]:
    """Network arithmetic -> the labels of the trained rows that used it (for the caption)."""
    out: dict[str, list[str]] = {}
    for tr in table_rows:
        if not tr.trained:
            continue
        for p in sorted({precision_of(r) for r in rows if r["method"] == tr.method and r["seed"] is not None
                         and revision_of(r) == tr.revision}):
            out.setdefault(p, []).append(tr.label)
    return out


# ---------------------------------------------------------------- one table

def build_table(kind: str, noise_type: str, split: str, source: str, levels: tuple[float, ...],
                methods: list[str], labels: dict[str, str], rows: list[dict], epoch: int | None = None,
                not_at_epoch: list[dict] = ()) -> Table:
    """A table of `methods` (rows, in that order) x input SNR `levels` (columns) on `noise_type`.

    A method scored under several protocol revisions gets one row per
    revision, labelled "[revision]". `not_at_epoch`: runs without a row at
    `epoch`, counted in the caption.
    """
    table_rows, run_counts = [], []
    ours = [r for r in rows if r["method"] in methods and r["noise_type"] == noise_type
            and float(r["snr_db"]) in levels]
    mixed = len({revision_of(r) for r in ours}) > 1
    run_levels = {float(r["snr_db"]) for r in ours}
    partial = []
    for method in methods:
        of_method = [r for r in ours if r["method"] == method]
        for revision in sorted({revision_of(r) for r in of_method}, key=revision_order):
            mine = [r for r in of_method if revision_of(r) == revision]
            trained = any(r["seed"] is not None for r in mine)
            by_level = [[r for r in mine if float(r["snr_db"]) == lv] for lv in levels]
            cells = {metric: [cell_of(at, metric, trained) for at in by_level] for metric, _, _ in TABLE_METRICS}
            if trained:
                run_counts += [c.n for c in cells["snr_db"] if c.n]
            label = labels.get(method, method) + (f" [{revision}]" if mixed else "")
            table_rows.append(TableRow(method, label, trained, cells, scored_epochs(mine), revision))
            not_run = [lv for lv, at in zip(levels, by_level, strict=True) if not at and lv in run_levels]
            if not_run:
                partial.append(f"{label} at {levels_text(not_run)} dB")
    mark_best(table_rows, len(levels))
    n_missing = sum(1 for r in not_at_epoch if r["method"] in methods and r["noise_type"] == noise_type
                    and float(r["snr_db"]) in levels)
    table = Table(kind, noise_type, split, source, levels, table_rows, run_counts=run_counts,
                  epoch=epoch, n_not_at_epoch=n_missing, precisions=precisions(ours, table_rows))
    table.title = captions.table_title(kind, noise_type, split, source, table_rows, epoch)
    table.caption = captions.caption(table)
    table.note = captions.empty_note(table, levels, run_levels, partial, methods, labels)
    return table
