"""Tables and figures from any set of results.jsonl files, in one folder (`ecg-jax tables`).

    markdown, written = write_report(["runs/baselines", "runs/unet"], "tables/")

Each run (results.run_key) is shown at its final epoch, or with `epoch=N` at
epoch N; diverged runs are left out of mean ± std and counted in the captions.
Written: tables.html, tables.md and runs.csv (every used run's numbers, one
column per field: input_snr_db, output_snr_db, rmse_mv, ...), snr_curves
(PNG, SVG; one per split/source/revision when the rows mix them) and, when a
results folder holds an examples.npz, example_<noise>_<snr>dB figures
(unreadable files are skipped with a warning).
"""

from __future__ import annotations

import os
import sys

from ecg_jax import results
from ecg_jax.config_utils import write_text_atomic
from ecg_jax.errors import ConfigError
from ecg_jax.report import examples, figures, sweeps
from ecg_jax.report.build import build_tables
from ecg_jax.report.published import PublishedRow
from ecg_jax.report.render import render_html, render_markdown, runs_csv_text
from ecg_jax.report.select import network_epochs, select_rows


def warn(msg: str) -> None:
    """A "warning: ..." line on stderr."""
    print(f"warning: {msg}", file=sys.stderr)


def write_tables(rows: list[dict], out_dir: str, epoch: int | None = None,
                 published: list[PublishedRow] | None = None) -> dict[str, str]:
    """tables.html, tables.md and runs.csv in `out_dir`; returns {"html", "markdown", "csv"} paths.

    Each run contributes its final epoch's row, or with `epoch=N` its row
    scored at epoch N (see `select.select_rows`); runs.csv lists exactly those
    rows, diverged ones included.
    """
    tables = build_tables(rows, epoch=epoch, published=published)
    paths = {"html": os.path.join(out_dir, "tables.html"),
             "markdown": os.path.join(out_dir, "tables.md"),
             "csv": os.path.join(out_dir, "runs.csv")}
    write_text_atomic(paths["html"], render_html(tables))
    write_text_atomic(paths["markdown"], render_markdown(tables))
    write_text_atomic(paths["csv"], runs_csv_text(select_rows(rows, epoch)))
    return paths


def write_example_figures(result_paths: list[str], out_dir: str) -> list[str]:
    """One example figure per (noise type, SNR) of the examples.npz files beside `result_paths`."""
    found = []
    for p in result_paths:
        folder = p if os.path.isdir(p) else os.path.dirname(os.path.abspath(p))
        npz = os.path.join(folder, "examples.npz")
        if not os.path.isfile(npz):
            continue
        # A training workdir's examples.npz does not name its method: take it
        # from the folder's results when they hold exactly one method.
        rows = results.read_rows([p])
        methods = {r["method"] for r in rows}
        method = methods.pop() if len(methods) == 1 else None
        # your own network's name is in its rows (network_label), not in the built-in names
        label = results.display_name(method, rows) if method else None
        found += examples.load_examples(npz, method=method, warn=warn, label=label)
    written = []
    used_stems: set[str] = set()
    for ex in examples.merge_examples(found):
        stem = f"example_{ex.noise_type}_{ex.snr_db:g}dB"
        k = 2
        while stem in used_stems:
            stem, k = f"example_{ex.noise_type}_{ex.snr_db:g}dB_{k}", k + 1
        used_stems.add(stem)
        title = f"One test window, {ex.noise_type} noise at {ex.snr_db:g} dB input SNR"
        written += figures.plot_denoising_example(ex.clean, ex.noisy, ex.outputs, ex.fs, title,
                                                  os.path.join(out_dir, stem))
    return written


def write_report(result_paths: list[str], out_dir: str, epoch: int | None = None) -> tuple[str, list[str]]:
    """Write the tables and figures of the rows in `result_paths` (later ones win for
    duplicate rows) into `out_dir`; returns (the Markdown tables, the written paths).

    Each run is shown at its final epoch, or with `epoch=N` at epoch N (network
    rows scored at another epoch are not used; baselines always are). Raises
    ConfigError when `epoch` is given and no network row was scored at it.
    """
    rows = results.read_rows(result_paths)
    if not rows:
        raise ConfigError(f"no result rows in {', '.join(result_paths)}")
    if epoch is not None:
        networks = [r for r in rows if r["seed"] is not None]
        if networks and not any(r.get("epochs") == epoch for r in networks):
            have = network_epochs(networks)
            raise ConfigError(f"no network results scored at epoch {epoch} in {', '.join(result_paths)}; "
                              f"epochs present: {', '.join(map(str, have)) if have else 'none recorded'}")
    os.makedirs(out_dir, exist_ok=True)

    written = list(write_tables(rows, out_dir, epoch=epoch).values())
    written += list(figures.plot_snr_curves_by_protocol(rows, out_dir, epoch=epoch).values())
    written += write_example_figures(result_paths, out_dir)

    with open(os.path.join(out_dir, "tables.md")) as f:
        markdown = f.read()
    every_point = select_rows(rows, epoch, all_points=True)
    sweep = sweeps.sweep_markdown(every_point)
    if sweep:   # every point of a sweep, validation beside test; the main tables show the chosen one
        path = os.path.join(out_dir, "sweep.md")
        write_text_atomic(path, sweep + "\n")
        written += [path] + figures.plot_sweep(every_point, out_dir)
        markdown += "\n" + sweep + "\n"
    return markdown, written
