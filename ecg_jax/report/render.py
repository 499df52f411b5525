"""Tables as text: a standalone HTML page, Markdown, and runs.csv (the numbers behind them).

HTML has two header rows (the metric over its columns, rowspan/colspan);
Markdown, which has neither, one ("SNR(dB) -4", ..., "RMSE 4"). Published and
difference rows (--compare published) follow the row they belong to; the
notes follow the table.

runs.csv holds every selected row, diverged ones included (flagged), with
unique column names: `input_snr_db` (the dataset) and the metrics with their
units (`output_snr_db`, `rmse_mv`, ...; see CSV_METRIC_COLUMNS).
"""

from __future__ import annotations

import csv
import html
import io
import json

from ecg_jax.metrics import METRIC_NAMES
from ecg_jax.report.select import is_diverged, revision_of
from ecg_jax.report.table import TABLE_METRICS, Cell, Table, column_headers
from ecg_jax.results import display_name

# ---------------------------------------------------------------- HTML

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
    lines += [f'<p class="note footnote">{esc(footnote)}</p>' for footnote in table.footnotes]
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


# ---------------------------------------------------------------- Markdown

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
        for footnote in t.footnotes:
            out += [footnote, ""]
    if not tables:
        out.append("No results.")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- runs.csv

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
        values = [r["method"], display_name(r["method"], [r]), r["noise_type"], r["snr_db"],
                  "" if r["seed"] is None else r["seed"], r["split"], r["source"], revision_of(r),
                  _csv_value(r.get("epochs")), _csv_value(is_diverged(r))]
        values += [repr(float(r["metrics"][m])) for m in METRIC_NAMES]
        values += [_csv_value(r.get(k)) for k in extra]
        writer.writerow(values)
    return buf.getvalue()
