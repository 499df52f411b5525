"""Tables and figures of the benchmark's results (`ecg-jax tables`, `ecg-jax reproduce`).

One module per job; each imports only those above it here, so there are no cycles:
  table.py      what a table is: Cell, TableRow, Table (imports none of the others)
  captions.py   titles, captions and the notes under a table
  select.py     which result rows are used, and how they become cells and one table
  final.py      the final revision's four tables, in the layout of its README
  published.py  published.json and the published/difference rows (--compare published)
  build.py      every table of a set of rows, per (split, source) protocol
  render.py     HTML, Markdown and runs.csv text
  examples.py   a training workdir's example windows (examples.npz)
  figures.py    the example figure and the output-vs-input SNR curves
  write.py      the files in one folder: write_tables, write_report

The names below are the package's entry points; figures, examples and the
others stay reachable as submodules (`from ecg_jax.report import figures`).
"""

from ecg_jax.report.build import build_tables
from ecg_jax.report.published import DEFAULT_PUBLISHED, PublishedRow, load_published
from ecg_jax.report.render import render_html, render_markdown, runs_csv_columns, runs_csv_text
from ecg_jax.report.select import group_by_protocol, is_diverged, network_epochs, select_rows
from ecg_jax.report.table import Cell, Table, TableRow
from ecg_jax.report.write import write_report, write_tables

__all__ = ["Cell", "DEFAULT_PUBLISHED", "PublishedRow", "Table", "TableRow", "build_tables", "group_by_protocol",
           "is_diverged", "load_published", "network_epochs", "render_html", "render_markdown", "runs_csv_columns",
           "runs_csv_text", "select_rows", "write_report", "write_tables"]
