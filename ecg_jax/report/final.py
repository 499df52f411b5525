"""The final revision's four tables, in the layout of the reference's final README.

Rows of revision "final" (configs/final.py) are shown as the reference shows
them (published.json -> "final"):
  1. every noise type at input SNR -4 dB (columns bw, em, ma, emb),
  2. emb at -4..4 dB, the six networks and DWT/EMD,
  3. "components": the U-Net + ATNC with one of four attention modules in the
     decoder (SE, CBAM, ECA, AREM = DANCE),
  4. "ablation": the U-Net with AREM alone, ATNC alone, both.
The final U-Net (kernels 17, 17, 7, 7) is the "U-Net"/"Baseline" row of all
four. A note under each table names the cells without a result of ours and
why; with published numbers, published.add_final_comparisons puts the
published cell and our difference under each row.
"""

from __future__ import annotations

from ecg_jax.names import display_name, marked_labels
from ecg_jax.report import captions
from ecg_jax.report.select import build_table, cell_of, mark_best, revision_of, scored_epochs
from ecg_jax.report.table import TABLE_METRICS, Table, TableRow

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


def is_final(row: dict) -> bool:
    return revision_of(row) == REVISION


def build_final_tables(rows: list[dict], split: str, source: str, epoch: int | None = None,
                       not_at_epoch: list[dict] = ()) -> list[Table]:
    """The four tables from the chosen rows of one (split, source) group, all of revision "final".

    Methods of revision "final" that the README does not show (e.g. DANCER
    trained on the final data) are appended to tables 1 and 2 under their own
    names. Tables without a single result are left out.
    """
    if not rows:
        return []
    extra = sorted({r["method"] for r in rows} - set(MAIN) - set(COMPONENTS) - set(ABLATION))
    # labels marked with their provenance (names.PROVENANCE_MARKS), in the rows and in the notes naming them
    main = marked_labels({**MAIN, **{m: display_name(m, rows) for m in extra}})
    built = [_by_noise_table(rows, main, split, source, epoch)]
    for kind, labels in (("final_emb", main), ("final_components", marked_labels(COMPONENTS)),
                         ("final_ablation", marked_labels(ABLATION))):
        # The emb tables are main tables of their own methods and labels, retitled.
        table = build_table("main", "emb", split, source, LEVELS, list(labels), labels, rows, epoch, not_at_epoch)
        table.kind = kind
        table.title = captions.final_title(kind, split, source, epoch)
        table.caption = captions.final_caption(table)
        table.note = captions.final_missing_note(table, labels, [[(m, "emb", lv) for lv in LEVELS] for m in labels])
        built.append(table)
    return [t for t in built if t.rows]


def _by_noise_table(rows, labels, split, source, epoch) -> Table:
    """Table 1: a column per noise type, all at BY_NOISE_SNR."""
    table_rows, run_counts = [], []
    for method, label in labels.items():
        mine = [r for r in rows if r["method"] == method and float(r["snr_db"]) == BY_NOISE_SNR]
        if not mine:
            continue
        trained = any(r["seed"] is not None for r in mine)
        by_type = [[r for r in mine if r["noise_type"] == nt] for nt in BY_NOISE_COLUMNS]
        cells = {metric: [cell_of(at, metric, trained) for at in by_type] for metric, _, _ in TABLE_METRICS}
        if trained:
            run_counts += [c.n for c in cells["snr_db"] if c.n]
        table_rows.append(TableRow(method, label, trained, cells, scored_epochs(mine), REVISION))
    mark_best(table_rows, len(BY_NOISE_COLUMNS))
    table = Table("final_by_noise", "all", split, source, (BY_NOISE_SNR,) * len(BY_NOISE_COLUMNS), table_rows,
                  run_counts=run_counts, epoch=epoch, column_labels=BY_NOISE_COLUMNS)
    table.title = captions.final_title(table.kind, split, source, epoch)
    table.caption = captions.final_caption(table)
    table.note = captions.final_missing_note(table, labels, [[(m, nt, BY_NOISE_SNR) for nt in BY_NOISE_COLUMNS]
                                                             for m in labels])
    return table
