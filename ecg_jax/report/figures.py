"""Figures: one denoised test window, and output SNR against input SNR.

Figures are drawn on `matplotlib.figure.Figure` objects with the Agg canvas,
never through pyplot, so importing this module changes no global backend and
works on headless machines. Every figure is saved as PNG and SVG, sized for a
page (6.5 in wide) with a colour-blind-safe palette (Okabe & Ito).

  - The example figure (`plot_denoising_example`) shows one test window, one
    panel per lead: the noisy input (light grey), the clean target (thin black,
    drawn on top) and at most three outputs (`choose_outputs`: by default the
    best network, the best classical baseline and the runner-up network), each
    labelled with its output SNR on this window; the legend sits above the
    traces.
  - The SNR-curve figure (`plot_snr_curves`) has one panel per noise type in a
    two-column grid, shared axis labels, markers and line styles that tell the
    methods apart without colour, an "output = input" reference line and one
    legend below the panels.

The example windows of a training workdir (examples.npz) are read by
examples.py.
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import textwrap
from dataclasses import dataclass

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ecg_jax.atomic import atomic_path
from ecg_jax.config_utils import NOISE_TYPES
from ecg_jax.interrupts import deferred, disk_full_as_one_line
from ecg_jax.report import sweeps
from ecg_jax.report.captions import NOISE_DESCRIPTIONS
from ecg_jax.report.select import group_by_protocol, is_diverged, select_rows
from ecg_jax.results import ABLATION_METHODS, MAIN_TABLE_METHODS, display_name

PAGE_WIDTH_IN = 6.5
# Okabe & Ito (2008), "Color Universal Design": distinguishable with every
# common colour-vision deficiency. Yellow (#F0E442) is left out: too faint on white.
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
# The SNR curves draw classical baselines dashed, with open markers, in black and greys,
# which leaves the six coloured Okabe-Ito hues to the networks.
CLASSICAL_SHADES = ("#000000", "#6E6E6E", "#3C3C3C")
MARKERS = ("o", "s", "D", "^", "v", "P", "X", "<", ">", "h")
NOISY_COLOUR = "0.72"
# Classical (non-learned) methods, by id and display name: the "baseline" of choose_outputs.
CLASSICAL_METHODS = ("fft", "dwt", "emd")
MAX_EXAMPLE_OUTPUTS = 3
_STYLE = {"font.size": 8, "axes.titlesize": 8.5, "axes.labelsize": 8, "xtick.labelsize": 7.5,
          "ytick.labelsize": 7.5, "legend.fontsize": 7.5, "figure.titlesize": 9.5,
          "figure.labelsize": 8.5, "svg.hashsalt": "ecg-jax"}


@dataclass(frozen=True)
class Series:
    """One plotted line: mean output SNR (and std over seeds) per input SNR level."""

    levels: tuple[float, ...]
    means: tuple[float, ...]
    stds: tuple[float, ...]     # sample std (ddof=1); 0 for one run or a deterministic method
    counts: tuple[int, ...]     # finite runs per level


def _save(fig: Figure, path_stem: str) -> list[str]:
    """Save `fig` as PNG and SVG, atomically: each is rendered into a temporary file beside its final
    name (`atomic.atomic_path`), fsynced, and both are renamed into place only once both are complete.
    A failure (a full disk, even at close; Ctrl-C) leaves the earlier figures as they were and no
    temporary file; a full disk is one line naming the folder and the file (`DiskFullError`)."""
    folder = os.path.dirname(os.path.abspath(path_stem))
    os.makedirs(folder, exist_ok=True)
    FigureCanvasAgg(fig)
    paths = [path_stem + ".png", path_stem + ".svg"]
    options = [dict(format="png", dpi=200, bbox_inches="tight"),
               dict(format="svg", bbox_inches="tight", metadata={"Date": None})]   # reproducible SVG
    with matplotlib.rc_context(_STYLE), contextlib.ExitStack() as rendered:   # a failure removes both
        for path, kwargs in zip(paths, options, strict=True):
            with disk_full_as_one_line(folder, os.path.basename(path)):
                tmp = rendered.enter_context(atomic_path(path))
                with open(tmp, "wb") as f:
                    fig.savefig(f, **kwargs)
                    f.flush()
                    os.fsync(f.fileno())
        renames = rendered.pop_all()
    with deferred():   # Ctrl-C between the two renames waits for both
        renames.close()
    return paths


def _wrap(title: str, width: int = 95) -> str:
    return "\n".join(textwrap.wrap(title, width)) if title else title


# ------------------------------------------------------------ example figure

def window_snr_db(clean, estimate) -> float:
    """Output SNR (dB) of `estimate` on one window, all leads together (as metrics.snr_db)."""
    clean, estimate = np.asarray(clean, float), np.asarray(estimate, float)
    err = float(np.sum((clean - estimate) ** 2))
    sig = float(np.sum(clean ** 2))
    if err == 0.0:
        return math.inf
    return 10.0 * math.log10(max(sig, 1e-30) / err)


def is_classical(name: str) -> bool:
    """True for a classical baseline (FFT, DWT, EMD), by method id or display name."""
    return name.lower() in CLASSICAL_METHODS or name in {display_name(m) for m in CLASSICAL_METHODS}


def _resolve(name: str, outputs: dict) -> str:
    if name in outputs:
        return name
    if display_name(name) in outputs:
        return display_name(name)
    raise ValueError(f"no output named {name!r} to show; available: {', '.join(outputs) or 'none'}")


def choose_outputs(outputs: dict[str, np.ndarray], clean, show: list[str] | None = None,
                   scores: dict[str, float] | None = None,
                   max_outputs: int = MAX_EXAMPLE_OUTPUTS) -> list[str]:
    """The names of `outputs` an example figure draws, in legend order (at most `max_outputs`).

    `show` (names or method ids) is taken as given. Otherwise: the best network,
    the best classical baseline (FFT/DWT/EMD) and then the next-best networks
    (then baselines) until `max_outputs`. "Best" is the highest of `scores`
    (e.g. the mean output SNR of the method's runs on this dataset; names
    missing there rank last), else the output SNR on this window. Without a
    classical baseline among `outputs` the first output given takes its place
    (the reference of an ablation).
    """
    if show is not None:
        chosen = list(dict.fromkeys(_resolve(n, outputs) for n in show))
        if len(chosen) > max_outputs:
            raise ValueError(f"at most {max_outputs} outputs in one example figure, got {len(chosen)}: "
                             f"{', '.join(chosen)}")
        return chosen

    def score(name: str) -> float:
        if scores is not None:
            v = scores.get(name, -math.inf)
            return v if math.isfinite(v) or v == math.inf else -math.inf
        v = window_snr_db(clean, outputs[name])
        return v if not math.isnan(v) else -math.inf

    ranked = sorted(outputs, key=lambda n: -score(n))  # stable: ties keep the given order
    classical = [n for n in ranked if is_classical(n)]
    # The reference: the best classical baseline, or without one the first output given
    # (e.g. "Baseline (U-Net)" of the CIADNet ablation).
    reference = classical[:1] or list(outputs)[:1]
    networks = [n for n in ranked if n not in classical and n not in reference]
    chosen = networks[:1] + reference
    for n in networks[1:] + classical[1:]:
        if len(chosen) >= max_outputs:
            break
        chosen.append(n)
    return chosen[:max_outputs]


def denoising_example_figure(clean, noisy, outputs: dict[str, np.ndarray], fs: float, title: str,
                             show: list[str] | None = None,
                             scores: dict[str, float] | None = None) -> Figure:
    """The Figure of `plot_denoising_example` (not saved)."""
    clean, noisy = np.asarray(clean, float), np.asarray(noisy, float)
    if clean.ndim != 2 or noisy.shape != clean.shape:
        raise ValueError(f"clean and noisy must be (L, C) of one shape, got {clean.shape}, {noisy.shape}")
    for name, out in outputs.items():
        if np.shape(out) != clean.shape:
            raise ValueError(f"output {name!r} has shape {np.shape(out)}, expected {clean.shape}")
    chosen = choose_outputs(outputs, clean, show, scores)
    t = np.arange(clean.shape[0]) / float(fs)
    n_leads = clean.shape[1]
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(PAGE_WIDTH_IN, 1.25 + 1.75 * n_leads), layout="constrained")
        axes = fig.subplots(n_leads, 1, sharex=True, squeeze=False)[:, 0]
        handles, labels = [], []
        for lead, ax in enumerate(axes):
            h = [ax.plot(t, noisy[:, lead], color=NOISY_COLOUR, lw=0.9, zorder=1)[0]]
            for i, name in enumerate(chosen):
                h += ax.plot(t, np.asarray(outputs[name], float)[:, lead], color=OKABE_ITO[i], lw=1.3,
                             alpha=0.9, zorder=2 + i)
            h += ax.plot(t, clean[:, lead], color="black", lw=0.8, zorder=10)
            ax.set_ylabel(f"lead {lead + 1} (mV)")
            ax.set_xlim(t[0], t[-1])
            ax.grid(alpha=0.25, lw=0.5)
            if lead == 0:
                handles = h
        labels = [f"noisy input (SNR {window_snr_db(clean, noisy):.1f} dB)"]
        labels += [f"{name} (SNR {window_snr_db(clean, outputs[name]):.1f} dB)" for name in chosen]
        labels += ["clean target"]
        # Clean and noisy first, then the outputs in the chosen order; above the
        # first panel, outside every trace (constrained layout makes room for it).
        order = [len(handles) - 1, 0] + list(range(1, len(handles) - 1))
        axes[0].legend([handles[i] for i in order], [labels[i] for i in order], loc="lower center",
                       bbox_to_anchor=(0.5, 1.02), ncol=_legend_columns(labels),
                       frameon=False, borderaxespad=0.0, handlelength=1.8, columnspacing=1.5)
        axes[-1].set_xlabel(f"time (s), sampled at {float(fs):g} Hz")
        if title:
            fig.suptitle(_wrap(title, 90))
    FigureCanvasAgg(fig)
    return fig


def _legend_columns(labels: list[str]) -> int:
    """Columns for the example legend: all in one row when short, else three, or two for long names."""
    widest = max(map(len, labels))
    if len(labels) * (widest + 6) <= 110:
        return len(labels)
    return 3 if widest <= 30 else 2


def plot_denoising_example(clean, noisy, outputs: dict[str, np.ndarray], fs: float, title: str,
                           path_stem: str, show: list[str] | None = None,
                           scores: dict[str, float] | None = None) -> list[str]:
    """Clean, noisy and at most three outputs for one window `(L, C)`; one panel per lead.

    `outputs` maps a display name ("U-Net", "FFT", ...) to that method's
    denoised window; `show` picks which are drawn (at most three; default:
    `choose_outputs`, ranked by `scores` when given, else by the SNR on this
    window). Returns the written paths (PNG, SVG).
    """
    return _save(denoising_example_figure(clean, noisy, outputs, fs, title, show, scores), path_stem)


def _method_order(methods: set[str]) -> list[str]:
    known = list(MAIN_TABLE_METHODS) + [m for m in ABLATION_METHODS if m not in MAIN_TABLE_METHODS]
    known[2:2] = [m for m in CLASSICAL_METHODS if m not in known]   # e.g. EMD after DWT
    return [m for m in known if m in methods] + sorted(methods - set(known))


def _label(method: str, rows: list[dict] = ()) -> str:
    name = display_name(method, rows)   # rows: your own network's name (network_label)
    return method.upper() if name == method and method in CLASSICAL_METHODS else name


def curve_methods(rows: list[dict]) -> list[str]:
    """Default methods of the SNR curves: all but the ablation-only CIADNet variants
    (they have their own table and would crowd the emb panel)."""
    ablation_only = set(ABLATION_METHODS) - set(MAIN_TABLE_METHODS)
    return _method_order({r["method"] for r in rows} - ablation_only)


def snr_curve_series(rows: list[dict], methods: list[str] | None = None,
                     epoch: int | None = None) -> dict[str, dict[str, Series]]:
    """{noise_type: {method: Series}}: exactly the numbers `plot_snr_curves` draws.

    One row per run as in the tables (`select.select_rows`: each run's final
    epoch, or with `epoch=N` its row scored at epoch N). Means and sample stds
    over the runs of each (method, noise type, input SNR), diverged runs
    (`select.is_diverged`) left out; levels without such a run are dropped.
    `methods=None` means `curve_methods(rows)`.
    """
    rows = [r for r in select_rows(rows, epoch) if not is_diverged(r)]
    methods = curve_methods(rows) if methods is None else list(methods)
    series: dict[str, dict[str, Series]] = {}
    for nt in [t for t in NOISE_TYPES if any(r["noise_type"] == t for r in rows)]:
        mine = [r for r in rows if r["noise_type"] == nt]
        series[nt] = {}
        for method in methods:
            points = []
            for level in sorted({float(r["snr_db"]) for r in mine if r["method"] == method}):
                values = [r["metrics"]["snr_db"] for r in mine
                          if r["method"] == method and float(r["snr_db"]) == level]
                values = [v for v in values if math.isfinite(v)]
                if values:
                    std = statistics.stdev(values) if len(values) > 1 else 0.0
                    points.append((level, statistics.fmean(values), std, len(values)))
            if points:
                levels, means, stds, counts = zip(*points, strict=True)
                series[nt][method] = Series(levels, means, stds, counts)
    return series


def plot_snr_curves_by_protocol(rows: list[dict], out_dir: str, epoch: int | None = None) -> dict[str, str]:
    """One SNR-curve figure per (split, source, revision), so a "first" FFT curve is never averaged
    with a "paper" one: {stem: png path, stem + "_svg": svg path}. One protocol: stem "snr_curves"."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for (split, source), group in group_by_protocol(rows).items():
        for r in group:
            groups.setdefault((split, source, r.get("revision", "paper")), []).append(r)
    paths = {}
    for (split, source, revision), group in groups.items():
        stem = "snr_curves" if len(groups) == 1 else f"snr_curves_{split}_{source}_{revision}"
        png, svg = plot_snr_curves(group, os.path.join(out_dir, stem), epoch=epoch)
        paths[stem], paths[stem + "_svg"] = png, svg
    return paths


def snr_curve_figure(rows: list[dict], title: str | None = None, methods: list[str] | None = None,
                     epoch: int | None = None) -> Figure:
    """The Figure of `plot_snr_curves` (not saved)."""
    groups = group_by_protocol(rows)
    if len(groups) != 1:
        raise ValueError(f"plot one (split, source) at a time; got {sorted(groups)}")
    (split, source), = groups
    methods = curve_methods(rows) if methods is None else list(methods)
    series = snr_curve_series(rows, methods, epoch)
    networks = [m for m in methods if not is_classical(m)]
    classical = [m for m in methods if is_classical(m)]
    colours = {m: OKABE_ITO[i % 6] for i, m in enumerate(networks)}
    colours.update({m: CLASSICAL_SHADES[i % len(CLASSICAL_SHADES)] for i, m in enumerate(classical)})
    markers = {m: MARKERS[i % len(MARKERS)] for i, m in enumerate(methods)}
    n = max(1, len(series))
    ncols = 1 if n == 1 else 2
    nrows = math.ceil(n / ncols)
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(PAGE_WIDTH_IN, 1.6 + 2.35 * nrows), layout="constrained")
        axes = fig.subplots(nrows, ncols, sharex=True, squeeze=False).ravel()
        for ax in axes[len(series):]:
            ax.set_visible(False)
        handles: dict[str, object] = {}
        levels = sorted({lv for lines in series.values() for s in lines.values() for lv in s.levels})
        # Neighbouring methods are nudged apart along x so that their error bars do not hide each other.
        drawn = [m for m in methods if any(m in lines for lines in series.values())]
        step = min(0.12, 0.6 / max(1, len(drawn) - 1)) if len(levels) > 1 else 0.0
        dodge = {m: (i - (len(drawn) - 1) / 2) * step for i, m in enumerate(drawn)}
        # strict=False: the grid may have one panel more than there are series (hidden above).
        for ax, (nt, lines) in zip(axes, series.items(), strict=False):
            if levels:
                ref = ax.plot([levels[0] - 0.5, levels[-1] + 0.5], [levels[0] - 0.5, levels[-1] + 0.5],
                              color="0.65", lw=0.8, ls=":", zorder=0)[0]
                handles["__identity__"] = ref
            for method, s in lines.items():
                classical = is_classical(method)
                h = ax.errorbar([lv + dodge[method] for lv in s.levels], s.means, yerr=s.stds,
                                color=colours[method], marker=markers[method], ms=4, capsize=2,
                                elinewidth=0.8, lw=1.1, ls="--" if classical else "-",
                                mfc="white" if classical else colours[method], mew=1.0)
                handles[method] = h
            ax.set_title(NOISE_DESCRIPTIONS.get(nt, nt))
            ax.grid(alpha=0.25, lw=0.5)
            if levels:
                ax.set_xticks(levels)
                ax.set_xlim(levels[0] - 0.6, levels[-1] + 0.6)
            ax.tick_params(labelbottom=True)
        # The x label once per column, under the lowest visible panel: a figure-level label
        # would collide with the legend below the panels.
        for col in range(ncols):
            visible = [ax for ax in axes[col::ncols] if ax.get_visible()]
            if visible:
                visible[-1].set_xlabel("input SNR (dB)")
        ordered = [m for m in methods if m in handles]
        legend_handles = [handles[m] for m in ordered]
        legend_labels = [_label(m, rows) for m in ordered]
        if "__identity__" in handles:
            legend_handles.append(Line2D([], [], color="0.65", lw=0.8, ls=":"))
            legend_labels.append("output = input")
        if legend_handles:
            fig.legend(legend_handles, legend_labels, loc="outside lower center",
                       ncol=min(5, len(legend_handles)), frameon=False)
        fig.supylabel("output SNR (dB), mean ± std over seeds")
        default = f"Output vs input SNR — {split} split, {source} data"
        if epoch is not None:
            default += f", networks at epoch {epoch}"
        if source == "synthetic":
            default += " (SYNTHETIC)"
        fig.suptitle(_wrap(title or default))
    FigureCanvasAgg(fig)
    return fig


def plot_snr_curves(rows: list[dict], path_stem: str, title: str | None = None,
                    methods: list[str] | None = None, epoch: int | None = None) -> list[str]:
    """Output SNR against input SNR, one panel per noise type (two columns), ±std error bars over seeds.

    `rows` must come from one split protocol and data source (see
    select.group_by_protocol). A method keeps its colour, marker and line
    style (dashed with open markers for classical baselines) in every panel;
    one shared legend sits below the panels, with a dotted "output = input"
    line for reference. Points of neighbouring methods are nudged apart by a
    fraction of a dB along x so their error bars stay visible. Rows are
    selected as in the tables (`epoch`: see `snr_curve_series`). Returns the
    written paths (PNG, SVG) at page width (6.5 in).
    """
    return _save(snr_curve_figure(rows, title, methods, epoch), path_stem)


def line_figure(series: dict[str, list[tuple[float, float]]], path_stem: str, x_label: str, y_label: str,
                title: str, log_x: bool = False) -> list[str]:
    """One panel of labelled lines through (x, y) points (e.g. a sweep's validation SNR against a swept
    value); a logarithmic x axis only when asked and every x is positive. Returns the written paths."""
    fig = Figure(figsize=(6.5, 3.6))
    ax = fig.add_subplot(1, 1, 1)
    xs = [x for points in series.values() for x, _ in points]
    for label, points in series.items():
        ax.plot([x for x, _ in points], [y for _, y in points], marker="o", label=label)
    if log_x and xs and min(xs) > 0:
        ax.set_xscale("log")
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(_wrap(title), fontsize=9)
    ax.grid(True, alpha=0.3)
    if series:
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path_stem)


def plot_sweep(rows: list[dict], out_dir: str) -> list[str]:
    """A sweep's figures (report/sweeps.py), sweep_<field>.png/.svg: the mean validation SNR against each
    swept value, one line per network and dataset; [] without a sweep."""
    written = []
    sweep_rows = [r for r in rows if sweeps.is_sweep_row(r)]
    for axis in sweeps.numeric_axes(sweep_rows):
        series = {}
        for group, points in sweeps.point_scores(sweep_rows).items():
            xs, ys = [], []
            for s in points.values():
                r = s["rows"][0]
                if axis in (r.get("sweep") or {}):
                    xs.append(float(r["sweep"][axis]))
                    ys.append(sweeps.mean_std(s["validation"])[0])
            if xs:
                method, noise_type, snr_db = group[:3]
                label = f"{display_name(method, [points[next(iter(points))]['rows'][0]])}, {noise_type} {snr_db:g} dB"
                series[label] = sorted(zip(xs, ys, strict=True))
        written += line_figure(series, os.path.join(out_dir, f"sweep_{axis}"), x_label=axis,
                               y_label="validation output SNR (dB)", log_x=axis in ("learning_rate", "adam_eps",
                                                                                   "weight_decay"),
                               title=f"Sweep over {axis}: mean validation SNR over seeds")
    return written
