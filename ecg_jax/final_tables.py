"""The final revision's four tables, in the layout of the reference's final README.

Rows of revision "final" (configs/final.py) are shown as the reference shows
them (published.json -> "final"):
  1. every noise type at input SNR -4 dB (columns bw, em, ma, emb),
  2. emb at -4..4 dB, the six networks and DWT/EMD,
  3. "components": the U-Net + ATNC with one of four attention modules in the
     decoder (SE, CBAM, ECA, AREM = DANCE),
  4. "ablation": the U-Net with AREM alone, ATNC alone, both.
The final U-Net (kernels 17, 17, 7, 7) is the "U-Net"/"Baseline" row of all
four. With published numbers (`tables.load_published`), each row is followed
by the published cell and our difference; a note under each table names the
cells without a result of ours and why.
"""

from __future__ import annotations

from ecg_jax import tables
from ecg_jax.names import display_name
from ecg_jax.tables import (MISSING, TABLE_METRICS, Table, TableRow, _build_table, _cell, _diverged_caption,
                            _epoch_caption, _mark_best, _revision_caption, _runs_text, _upper_first)

REVISION = "final"
BY_NOISE_SNR = -4.0
BY_NOISE_COLUMNS = ("bw", "em", "ma", "emb")  # the README's column order
LEVELS = (-4.0, -2.0, 0.0, 2.0, 4.0)

# method id -> label in the README
MAIN = {"dwt": "DWT", "emd": "EMD", "unet": "U-Net", "drsn": "DRSN", "dacnn_final": "DACNN",
        "acdae_final": "ACDAE", "ralenet": "RALENet", "dance_final": "DANCE"}
COMPONENTS = {"unet": "U-Net", "dance_final_se": "+ ATNC & SE", "dance_final_cbam": "+ ATNC & CBAM",
              "dance_final_eca": "+ ATNC & ECA", "dance_final": "+ ATNC & AREM (DANCE)"}
ABLATION = {"unet": "Baseline (U-Net)", "dance_final_arem": "+ AREM", "dance_final_atnc": "+ ATNC",
            "dance_final": "+ ATNC & AREM"}
# published.json "final" section -> (table kind, labels); "by_noise_at_-4" is read per noise type.
PUBLISHED_SECTIONS = {"emb": ("final_emb", MAIN), "components": ("final_components", COMPONENTS),
                      "ablation": ("final_ablation", ABLATION)}
BY_NOISE_SECTION = "by_noise_at_-4"
TITLES = {
    "final_by_noise": "Final revision: every noise type at input SNR -4 dB",
    "final_emb": "Final revision: emb (bw + em + ma) at input SNR -4..4 dB",
    "final_components": "Final revision, components: U-Net + ATNC with one attention module in the decoder, emb",
    "final_ablation": "Final revision, ablation: U-Net with AREM, ATNC, both, emb",
}
# README rows that ecg-jax cannot train yet, and why (ecg_jax.models.UNAVAILABLE_MODELS).
NOT_BUILT = {"dacnn_final": "its source at the reference commit is not available, see ecg_jax.models"}
WHY_MISSING = ("not in the results read: not run yet, or its run's config did not include that noise type "
               "or input SNR (configs/final.py:all runs every cell)")


def is_final(row: dict) -> bool:
    return tables.revision_of(row) == REVISION


def build_final_tables(rows: list[dict], split: str, source: str, epoch: int | None = None,
                       not_at_epoch: list[dict] = (), published=None) -> list[Table]:
    """The four tables from the chosen rows of one (split, source) group, all of revision "final".

    Methods of revision "final" that the README does not show (e.g. DANCER
    trained on the final data) are appended to tables 1 and 2 under their own
    names. Tables without a single result are left out.
    """
    if not rows:
        return []
    extra = sorted({r["method"] for r in rows} - set(MAIN) - set(COMPONENTS) - set(ABLATION))
    main = {**MAIN, **{m: display_name(m) for m in extra}}
    built = [_by_noise_table(rows, main, split, source, epoch)]
    for kind, labels in (("final_emb", main), ("final_components", COMPONENTS), ("final_ablation", ABLATION)):
        table = _build_table("main", "emb", split, source, LEVELS, list(labels), labels, rows, epoch,
                             not_at_epoch)
        table.kind = kind
        table.title = _title(kind, split, source, epoch)
        table.caption = _caption(table)
        table.note = _missing_note(table, labels, [[(m, "emb", lv) for lv in LEVELS] for m in labels])
        built.append(table)
    built = [t for t in built if t.rows]
    if published is not None:
        for table in built:
            _add_published(table, published)
    return built


def _by_noise_table(rows, labels, split, source, epoch) -> Table:
    table_rows, run_counts = [], []
    for method, label in labels.items():
        mine = [r for r in rows if r["method"] == method and float(r["snr_db"]) == BY_NOISE_SNR]
        if not mine:
            continue
        trained = any(r["seed"] is not None for r in mine)
        by_type = [[r for r in mine if r["noise_type"] == nt] for nt in BY_NOISE_COLUMNS]
        cells = {metric: [_cell(at, metric, trained) for at in by_type] for metric, _, _ in TABLE_METRICS}
        if trained:
            run_counts += [c.n for c in cells["snr_db"] if c.n]
        epochs = tuple(sorted({r.get("epochs") for r in mine}, key=lambda e: (e is not None, e or 0)))
        table_rows.append(TableRow(method, label, trained, cells, epochs, REVISION))
    _mark_best(table_rows, len(BY_NOISE_COLUMNS))
    table = Table("final_by_noise", "all", split, source, (BY_NOISE_SNR,) * len(BY_NOISE_COLUMNS), table_rows,
                  run_counts=run_counts, epoch=epoch, column_labels=BY_NOISE_COLUMNS)
    table.title = _title(table.kind, split, source, epoch)
    table.caption = _caption(table)
    table.note = _missing_note(table, labels, [[(m, nt, BY_NOISE_SNR) for nt in BY_NOISE_COLUMNS]
                                               for m in labels])
    return table


def _title(kind: str, split: str, source: str, epoch: int | None) -> str:
    title = f"{TITLES[kind]} — {split} split, {source} data"
    if epoch is not None:
        title += f", networks at epoch {epoch}"
    return title + (" (SYNTHETIC data)" if source == "synthetic" else "")


def _caption(table: Table) -> str:
    columns = ("Columns: noise type, all at input SNR -4 dB" if table.kind == "final_by_noise"
               else "Columns: input SNR (dB)")
    text = (f"{TITLES[table.kind]}. Output SNR (dB, higher is better) and RMSE (mV, lower is better). "
            f"{columns}. {_upper_first(_runs_text(table))}; 4 decimals; best per column in bold; "
            f"{MISSING} = no result. The reference trains one run (seed 42) per cell.")
    for extra in (_epoch_caption(table), _diverged_caption(table)):
        if extra:
            text += " " + extra
    text += (f" {_revision_caption(table)} Split: {tables.SPLIT_DESCRIPTIONS.get(table.split, table.split)}. "
             f"Data: {tables.SOURCE_DESCRIPTIONS.get(table.source, table.source)}.")
    return ("SYNTHETIC data — " + text) if table.source == "synthetic" else text


def _missing_note(table: Table, labels: dict[str, str], wanted: list[list[tuple]]) -> str:
    """Which of the README's cells have no result here, and why."""
    have = {r.method: r for r in table.rows}
    columns = table.column_labels or tuple(tables._level_text(lv) for lv in table.levels)
    unit = "" if table.column_labels else " dB"
    absent_rows, absent_cells = [], []
    for method, cells in zip(labels, wanted):
        row = have.get(method)
        if row is None:
            why = NOT_BUILT.get(method)
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
    return _upper_first("; ".join(parts)) + f" ({WHY_MISSING})."


def _add_published(table: Table, published) -> None:
    """Published row and our difference under each of our rows (the README's cells, one run each)."""
    by_method = {}
    for p in published:
        if p.revision == REVISION and p.kind == table.kind:
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
                value = _published_value(pubs, metric, table, j)
                shown[metric].append(MISSING if value is None else f"{value:.4f}")
                ok = value is not None and cell.rounded is not None
                diff[metric].append(f"{cell.rounded - value:+.4f}" if ok else MISSING)
        differ = "" if table.source == "physionet" else f" (protocols differ: data: ours {table.source})"
        row.comparisons.append(("↳ published (final README, one run) [revision final]", shown))
        row.comparisons.append(("↳ Δ ours − published" + differ, diff))
    if matched:
        names = {p.label for p in published if p.revision == REVISION and p.kind == table.kind}
        ours = {pub.label for row in table.rows for pub in by_method.get(row.method, [])}
        table.comparison_note = (
            "Published: the reference's final README (published.json \"final\"), one run (seed 42) per cell, "
            "SNR to 2 decimals and RMSE to 4; Δ = our value as shown − the published one; "
            f"{MISSING} where either is missing.")
        if names - ours:
            table.comparison_note += f" Published rows without a result of ours here: {', '.join(sorted(names - ours))}."


def _published_value(pubs, metric: str, table: Table, j: int) -> float | None:
    if table.kind == "final_by_noise":
        noise = BY_NOISE_COLUMNS[j]
        for p in pubs:
            if p.noise_type == noise and p.values.get(metric) is not None:
                return p.values[metric][0]
        return None
    values = pubs[0].values.get(metric)
    level = table.levels[j]
    if values is None or level not in LEVELS:
        return None
    return values[LEVELS.index(level)]


def published_rows(final: dict, row_type) -> list:
    """published.json's "final" section as `row_type` (tables.PublishedRow) objects: emb/components/
    ablation rows at -4..4 dB, and one row per (network, noise type) of "by_noise_at_-4" whose value
    sits at -4 dB (index 0)."""
    out = []
    for section, (kind, labels) in PUBLISHED_SECTIONS.items():
        by_label = {label: m for m, label in labels.items()}
        for label, entry in final.get(section, {}).items():
            if label not in by_label:
                continue
            values = {metric: tuple(float(v) for v in entry[key]) for metric, (key, _) in
                      tables.PUBLISHED_METRICS.items() if key in entry}
            out.append(row_type("emb", kind, by_label[label], label, "final README", REVISION, values, {}))
    by_label = {label: m for m, label in MAIN.items()}
    for label, entry in final.get(BY_NOISE_SECTION, {}).items():
        if label not in by_label:
            continue
        for noise in BY_NOISE_COLUMNS:
            values = {metric: (float(entry[key][noise]),) + (None,) * (len(LEVELS) - 1)
                      for metric, (key, _) in tables.PUBLISHED_METRICS.items()
                      if noise in entry.get(key, {})}
            out.append(row_type(noise, "final_by_noise", by_label[label], label, "final README", REVISION,
                                values, {}))
    return out
