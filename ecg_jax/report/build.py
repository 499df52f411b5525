"""Every table of a set of result rows: which tables there are, per protocol.

One table per noise type (emb, bw, ma, em) with methods as rows in the
protocol's order (FFT, DWT, EMD, the networks), plus the CIADNet ablation
table on emb. Rows of different split protocols or data sources are never
mixed: each (split, source) pair gets its own set of tables. Rows of several
protocol revisions ("paper", "first") may share a table (the published emb
table mixes "first" FFT/DWT with "paper" networks): a method scored under two
revisions gets one row per revision, labelled with it when the table holds
more than one, and the caption names the revision of every row. Rows of
revision "final" get the four tables of that revision's README (final.py).
"""

from __future__ import annotations

from ecg_jax.config_utils import NOISE_TYPES, SNR_LEVELS
from ecg_jax.names import PROVENANCE_FOOTNOTES, marked_labels
from ecg_jax.report import captions, final
from ecg_jax.report.published import PublishedRow, add_comparisons, add_final_comparisons
from ecg_jax.report.select import build_table, group_by_protocol, runs_not_at_epoch, select_rows
from ecg_jax.report.sweeps import sweep_note
from ecg_jax.report.table import Table
from ecg_jax.results import ABLATION_DISPLAY_NAMES, ABLATION_METHODS, MAIN_TABLE_METHODS, display_name


def build_tables(rows: list[dict], epoch: int | None = None,
                 published: list[PublishedRow] | None = None) -> list[Table]:
    """Main tables (emb, bw, ma, em) and the ablation table, per (split, source); the final
    revision's four tables before them.

    Each run contributes one row (see `select.select_rows`): its final epoch's,
    or with `epoch=N` its row scored at epoch N. With `published` (see
    `published.load_published`) each row with published numbers is followed by
    them and by our difference.
    """
    tables = []
    for (split, source), group in group_by_protocol(rows).items():
        final_group = [r for r in group if final.is_final(r)]
        group = [r for r in group if not final.is_final(r)]
        if final_group:
            chosen = select_rows(final_group, epoch)
            missing = runs_not_at_epoch(final_group, chosen) if epoch is not None else []
            tables += final.build_final_tables(chosen, split, source, epoch, missing)
        if group:
            tables += _protocol_tables(group, split, source, epoch)
    chosen = select_rows(rows, epoch)
    note = sweep_note(chosen)
    for table in tables:
        add_provenance_footnotes(table)
        if note and any(r.get("sweep_chosen") for r in chosen if r["method"] in {row.method for row in table.rows}):
            table.caption = f"{table.caption} {note}".strip()
    if published is not None:
        for table in tables:
            if table.kind.startswith("final"):
                add_final_comparisons(table, published)
            else:
                add_comparisons(table, published)
    return tables


def _protocol_tables(group: list[dict], split: str, source: str, epoch: int | None) -> list[Table]:
    """The main tables and the ablation table of one (split, source) group's rows (not "final")."""
    tables = []
    chosen = select_rows(group, epoch)
    not_at_epoch = runs_not_at_epoch(group, chosen) if epoch is not None else []
    # Every protocol level is a column, even one without results (the note says why it is empty).
    levels = tuple(sorted({float(s) for s in SNR_LEVELS} | {float(r["snr_db"]) for r in group}))
    known = set(MAIN_TABLE_METHODS) | set(ABLATION_METHODS)
    others = sorted({r["method"] for r in group} - known)
    main_methods = list(MAIN_TABLE_METHODS) + others
    main_labels = marked_labels({m: display_name(m, group) for m in main_methods})
    present_types = {r["noise_type"] for r in chosen}
    noise_types = [t for t in NOISE_TYPES if t in present_types]
    first_main = True
    for nt in noise_types:
        table = build_table("main", nt, split, source, levels, main_methods, main_labels, chosen,
                            epoch, not_at_epoch)
        if table.rows:
            absent = [t for t in NOISE_TYPES if t not in present_types]
            if first_main and absent:
                table.note = (table.note + " " if table.note else "") + captions.no_tables_note(absent)
            first_main = False
            tables.append(table)
    ablation_only = set(ABLATION_METHODS) - set(MAIN_TABLE_METHODS)
    if any(r["method"] in ablation_only and r["noise_type"] == "emb" for r in chosen):
        tables.append(build_table("ablation", "emb", split, source, levels, list(ABLATION_METHODS),
                                  marked_labels(ABLATION_DISPLAY_NAMES), chosen, epoch, not_at_epoch))
    return tables


def add_provenance_footnotes(table: Table) -> None:
    """The footnote of each provenance mark (names.PROVENANCE_MARKS) that the table's rows, caption or
    notes carry, so a marked name is never without its explanation."""
    text = " ".join([table.caption, table.note] + [r.label for r in table.rows])
    table.footnotes = [note for mark, note in PROVENANCE_FOOTNOTES.items() if mark in text]
