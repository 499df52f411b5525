"""The words around the numbers: table titles, captions and the notes under a table.

Captions say what every cell is (mean ± std over how many runs, which epoch,
which runs diverged and were left out, which protocol revision, split, data
source and network arithmetic); notes say why cells or rows are empty. The
notes about published rows (--compare published) live with them in
published.py.
"""

from __future__ import annotations

from ecg_jax.models import UNAVAILABLE_MODELS
from ecg_jax.report.table import MISSING, Table, TableRow, level_text, levels_text, revision_order
from ecg_jax.results import ABLATION_METHODS

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
# Rows each revision's tables are expected to have (protocol.md), for the
# note that lists the ones without results.
REVISION_METHODS = {
    "paper": ("fft", "dwt", "unet", "dacnn", "acdae", "ags_unet", "ciadnet", "dancer"),
    "first": ("fft", "dwt"),
    "final": ("dwt", "emd", "unet"),
}

# The final revision's four tables (final.py), titled as in its README.
FINAL_TITLES = {
    "final_by_noise": "Final revision: every noise type at input SNR -4 dB",
    "final_emb": "Final revision: emb (bw + em + ma) at input SNR -4..4 dB",
    "final_components": "Final revision, components: U-Net + ATNC with one attention module in the decoder, emb",
    "final_ablation": "Final revision, ablation: U-Net with AREM, ATNC, both, emb",
}
WHY_MISSING = ("not in the results read: not run yet, or its run's config did not include that noise type "
               "or input SNR (configs/final.py:all runs every cell)")


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


# ---------------------------------------------------------------- titles

def revisions_title(table_rows: list[TableRow]) -> str:
    revisions = sorted({r.revision for r in table_rows}, key=revision_order)
    return ("revision " if len(revisions) == 1 else "revisions ") + " + ".join(revisions)


def table_title(kind: str, noise_type: str, split: str, source: str, table_rows: list[TableRow],
                epoch: int | None) -> str:
    """The heading of a main or ablation table."""
    what = NOISE_DESCRIPTIONS.get(noise_type, noise_type)
    title = what if kind == "main" else f"Ablation of CIADNet's shrinkage blocks, {what}"
    title += f" — {split} split, {source} data, " + revisions_title(table_rows)
    if epoch is not None:
        title += f", networks at epoch {epoch}"
    return title + (" (SYNTHETIC data)" if source == "synthetic" else "")


def final_title(kind: str, split: str, source: str, epoch: int | None) -> str:
    """The heading of one of the final revision's four tables."""
    title = f"{FINAL_TITLES[kind]} — {split} split, {source} data"
    if epoch is not None:
        title += f", networks at epoch {epoch}"
    return title + (" (SYNTHETIC data)" if source == "synthetic" else "")


# ---------------------------------------------------------------- caption parts

def revision_caption(table: Table) -> str:
    revisions = sorted({r.revision for r in table.rows}, key=revision_order)
    if len(revisions) == 1:
        return f"Protocol revision: {REVISION_DESCRIPTIONS.get(revisions[0], revisions[0])}."
    parts = []
    for rev in revisions:
        names = ", ".join(r.label for r in table.rows if r.revision == rev)
        parts.append(f"{names}: {REVISION_DESCRIPTIONS.get(rev, rev)}")
    return "Protocol revisions (per row): " + "; ".join(parts) + "."


def runs_text(table: Table) -> str:
    trained = [r.label for r in table.rows if r.trained]
    deterministic = [r.label for r in table.rows if not r.trained]
    parts = []
    if trained and not table.run_counts:
        parts.append("trained networks: no run with finite metrics")
    elif trained:
        lo, hi = min(table.run_counts), max(table.run_counts)
        runs = plural(lo, "run") if lo == hi else f"{lo}–{hi} runs per cell (uneven)"
        parts.append(f"trained networks: mean ± sample std (ddof=1) over {runs}, one seed per run")
        if lo == 1:
            parts.append("a cell from a single run shows its value with (n=1)")
    if deterministic:
        parts.append(f"{', '.join(deterministic)}: deterministic, one value")
    return "; ".join(parts)


def epochs_text(epochs) -> str:
    known = [e for e in epochs if e is not None]
    text = ""
    if known:
        text = str(known[0]) if len(known) == 1 else f"{known[0]}–{known[-1]}"
    if None in epochs:
        text = f"{text} and not recorded" if text else "not recorded"
    return text


def epoch_caption(table: Table) -> str:
    trained = [r for r in table.rows if r.trained]
    if not trained and not table.n_not_at_epoch:
        return ""
    if table.epoch is not None:
        text = f"Networks scored at epoch {table.epoch}."
        if table.n_not_at_epoch:
            text += (f" {plural(table.n_not_at_epoch, 'network run')} without a result at epoch "
                     f"{table.epoch} not shown.")
        return text
    every = sorted({e for r in trained for e in r.epochs}, key=lambda e: (e is not None, e or 0))
    if every == [None]:
        return "Networks: scoring epoch not recorded in the results."
    if len(every) == 1:
        return f"Networks scored at their final epoch ({every[0]})."
    per = ", ".join(f"{r.label} {epochs_text(r.epochs)}" for r in trained)
    return f"Networks scored at each run's final epoch ({per})."


def diverged_caption(table: Table) -> str:
    entries = []
    for r in table.rows:
        parts = [f"at {level_text(lv)} dB ({c.n} of {plural(c.n_runs, 'run')}; {c.n_diverged} diverged)"
                 for lv, c in zip(table.levels, r.cells["snr_db"], strict=True) if c.n_diverged]
        if parts:
            entries.append(f"{r.label} " + ", ".join(parts))
    if not entries:
        return ""
    return "Diverged runs are left out of mean ± std: " + "; ".join(entries) + "."


def precision_caption(table: Table) -> str:
    if len(table.precisions) == 1:
        return f"Network arithmetic: train.precision={next(iter(table.precisions))}."
    parts = [f"{p} ({', '.join(labels)})" for p, labels in table.precisions.items()]
    return "Network arithmetic (per row): train.precision=" + "; ".join(parts) + "."


def _protocol_text(table: Table) -> str:
    """Revision, split and data source: the same closing sentences in every caption."""
    return (f" {revision_caption(table)} Split: {SPLIT_DESCRIPTIONS.get(table.split, table.split)}. "
            f"Data: {SOURCE_DESCRIPTIONS.get(table.source, table.source)}.")


# ---------------------------------------------------------------- captions

def caption(table: Table) -> str:
    """The caption of a main or ablation table."""
    what = (f"Noise type {NOISE_DESCRIPTIONS.get(table.noise_type, table.noise_type)}" if table.kind == "main"
            else f"Ablation on {NOISE_DESCRIPTIONS.get(table.noise_type, table.noise_type)}")
    text = (f"{what}. Output SNR (dB, higher is better) and RMSE (mV, lower is better) at each "
            f"input SNR (dB). {upper_first(runs_text(table))}; 4 decimals; best per column in bold; "
            f"{MISSING} = no result.")
    text = _with_run_details(text, table)
    if table.precisions:
        text += " " + precision_caption(table)
    if table.source == "synthetic":
        text = "SYNTHETIC data — " + text
    return text


def final_caption(table: Table) -> str:
    """The caption of one of the final revision's four tables."""
    columns = ("Columns: noise type, all at input SNR -4 dB" if table.kind == "final_by_noise"
               else "Columns: input SNR (dB)")
    text = (f"{FINAL_TITLES[table.kind]}. Output SNR (dB, higher is better) and RMSE (mV, lower is better). "
            f"{columns}. {upper_first(runs_text(table))}; 4 decimals; best per column in bold; "
            f"{MISSING} = no result. The reference trains one run (seed 42) per cell.")
    text = _with_run_details(text, table)
    return ("SYNTHETIC data — " + text) if table.source == "synthetic" else text


def _with_run_details(text: str, table: Table) -> str:
    """A caption's shared tail: the epoch and divergence notes when they apply, then the protocol."""
    for extra in (epoch_caption(table), diverged_caption(table)):
        if extra:
            text += " " + extra
    return text + _protocol_text(table)


# ---------------------------------------------------------------- notes

def empty_note(table: Table, levels, run_levels: set, partial: list[str], methods,
               labels: dict[str, str]) -> str:
    """Why cells or rows of a main or ablation table are empty: SNR levels not run, rows not run at
    some levels (`partial`), protocol methods without results."""
    parts = []
    empty = [lv for lv in levels if lv not in run_levels]
    if empty and run_levels:
        parts.append(f"Columns without numbers ({levels_text(empty)} dB): these results scored only input "
                     f"SNR {levels_text(sorted(run_levels))} dB (the runs' config snr_levels).")
    if partial:
        parts.append("Cells without numbers because that run did not score the level: "
                     + "; ".join(partial) + ".")
    present = {r.method for r in table.rows}
    if table.kind == "ablation":
        expected = list(ABLATION_METHODS)
    else:
        wanted = {m for r in table.rows for m in REVISION_METHODS.get(r.revision, ())}
        expected = [m for m in methods if m in wanted]
    missing = [labels.get(m, m) for m in expected if m not in present]
    if missing:
        parts.append(f"Rows without results (not run, or not in the results files read): {', '.join(missing)}.")
    return " ".join(parts)


def no_tables_note(absent: list[str]) -> str:
    """Under the first main table: the noise types that got no table."""
    return (f"No tables for {', '.join(absent)}: these results hold no run with those noise "
            f"types (a run scores its config's noise_types).")


def final_missing_note(table: Table, labels: dict[str, str], wanted: list[list[tuple]]) -> str:
    """Which of the final README's cells have no result here, and why."""
    have = {r.method: r for r in table.rows}
    columns = table.column_labels or tuple(level_text(lv) for lv in table.levels)
    unit = "" if table.column_labels else " dB"
    absent_rows, absent_cells = [], []
    for method, _cells in zip(labels, wanted, strict=True):   # one list of wanted cells per row
        row = have.get(method)
        if row is None:
            why = UNAVAILABLE_MODELS.get(method)   # rows ecg-jax cannot train, and why
            absent_rows.append(labels[method] + (f" (not built: {why})" if why else ""))
            continue
        empty = [columns[j] for j, c in enumerate(row.cells["snr_db"]) if c.n_runs == 0]
        if empty:
            absent_cells.append(f"{row.label} at {', '.join(empty)}{unit}")
    parts = []
    if absent_rows:
        parts.append(f"Rows without results: {', '.join(absent_rows)}")
    if absent_cells:
        parts.append(f"cells without results: {'; '.join(absent_cells)}")
    if not parts:
        return ""
    return upper_first("; ".join(parts)) + f" ({WHY_MISSING})."
