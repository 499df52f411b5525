"""What a table is: cells, rows and tables, and how a cell and a column header read.

Every other module of this package builds, captions, compares or renders
these; this one imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ecg_jax.config_utils import REVISIONS
from ecg_jax.results import DEFAULT_REVISION

MISSING = "—"
DECIMALS = 4
# (metric, column group header, which value is best)
TABLE_METRICS = (("snr_db", "SNR(dB)", max), ("rmse", "RMSE", min))


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
    kind: str                      # "main", "ablation" or one of the final revision's "final_*"
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
    column_labels: tuple[str, ...] = ()  # headers when the columns are not input SNRs (final.py)
    footnotes: list[str] = field(default_factory=list)   # what a mark beside a name means (names.PROVENANCE_MARKS)


def level_text(level: float) -> str:
    return f"{level:g}"


def levels_text(levels) -> str:
    return ", ".join(level_text(lv) for lv in levels)


def column_headers(table: Table) -> list[str]:
    return list(table.column_labels) or [level_text(lv) for lv in table.levels]


def revision_order(revision: str) -> tuple:
    """Sort key: the protocol's revisions in their order (config_utils.REVISIONS), unknown ones after."""
    return (REVISIONS.index(revision) if revision in REVISIONS else len(REVISIONS), revision)
