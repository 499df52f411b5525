"""Figures: one denoised test window, and output SNR against input SNR.

Figures are drawn on `matplotlib.figure.Figure` objects with the Agg canvas,
never through pyplot, so importing this module changes no global backend and
works on headless machines. Every figure is saved as PNG and SVG.

`load_examples` reads the example windows that evaluation and training write
(examples.npz, two layouts) without ever failing on a bad file.
"""

from __future__ import annotations

import math
import os
import statistics
from dataclasses import dataclass

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ecg_jax.config_utils import NOISE_TYPES
from ecg_jax.results import ABLATION_METHODS, MAIN_TABLE_METHODS, display_name
from ecg_jax.tables import NOISE_DESCRIPTIONS, group_by_protocol, is_diverged, select_rows


@dataclass(frozen=True)
class Series:
    """One plotted line: mean output SNR (and std over seeds) per input SNR level."""

    levels: tuple[float, ...]
    means: tuple[float, ...]
    stds: tuple[float, ...]     # sample std (ddof=1); 0 for one run or a deterministic method
    counts: tuple[int, ...]     # finite runs per level


def _save(fig: Figure, path_stem: str) -> list[str]:
    os.makedirs(os.path.dirname(os.path.abspath(path_stem)), exist_ok=True)
    FigureCanvasAgg(fig)
    paths = [path_stem + ".png", path_stem + ".svg"]
    fig.savefig(paths[0], dpi=150, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight", metadata={"Date": None})  # reproducible SVG
    return paths


def plot_denoising_example(clean, noisy, outputs: dict[str, np.ndarray], fs: float, title: str,
                           path_stem: str) -> list[str]:
    """Clean, noisy and each method's output for one window `(L, 2)`; one subplot per lead.

    `outputs` maps a display name ("U-Net", "FFT", ...) to that method's
    denoised window. Returns the written paths (PNG, SVG).
    """
    clean, noisy = np.asarray(clean), np.asarray(noisy)
    if clean.ndim != 2 or noisy.shape != clean.shape:
        raise ValueError(f"clean and noisy must be (L, C) of one shape, got {clean.shape}, {noisy.shape}")
    t = np.arange(clean.shape[0]) / float(fs)
    n_leads = clean.shape[1]
    fig = Figure(figsize=(10, 2.6 * n_leads))
    axes = fig.subplots(n_leads, 1, sharex=True, squeeze=False)[:, 0]
    for lead, ax in enumerate(axes):
        ax.plot(t, noisy[:, lead], color="0.65", lw=0.8, label="noisy")
        ax.plot(t, clean[:, lead], color="black", lw=1.4, label="clean")
        for name, out in outputs.items():
            ax.plot(t, np.asarray(out)[:, lead], lw=1.0, label=name)
        ax.set_ylabel(f"lead {lead + 1} (mV)")
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("time (s)")
    axes[0].legend(loc="upper right", fontsize=8, ncol=min(4, 2 + len(outputs)))
    fig.suptitle(title)
    return _save(fig, path_stem)


def _method_order(methods: set[str]) -> list[str]:
    known = list(MAIN_TABLE_METHODS) + [m for m in ABLATION_METHODS if m not in MAIN_TABLE_METHODS]
    return [m for m in known if m in methods] + sorted(methods - set(known))


def curve_methods(rows: list[dict]) -> list[str]:
    """Default methods of the SNR curves: all but the ablation-only CIADNet variants
    (they have their own table and would crowd the emb panel)."""
    ablation_only = set(ABLATION_METHODS) - set(MAIN_TABLE_METHODS)
    return _method_order({r["method"] for r in rows} - ablation_only)


def snr_curve_series(rows: list[dict], methods: list[str] | None = None,
                     epoch: int | None = None) -> dict[str, dict[str, Series]]:
    """{noise_type: {method: Series}}: exactly the numbers `plot_snr_curves` draws.

    One row per run as in the tables (`tables.select_rows`: each run's final
    epoch, or with `epoch=N` its row scored at epoch N). Means and sample stds
    over the runs of each (method, noise type, input SNR), diverged runs
    (`tables.is_diverged`) left out; levels without such a run are dropped.
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
                levels, means, stds, counts = zip(*points)
                series[nt][method] = Series(levels, means, stds, counts)
    return series


def plot_snr_curves(rows: list[dict], path_stem: str, title: str | None = None,
                    methods: list[str] | None = None, epoch: int | None = None) -> list[str]:
    """Output SNR against input SNR, one subplot per noise type, ±std error bars over seeds.

    `rows` must come from one split protocol and data source (see
    tables.group_by_protocol). A method keeps its colour in every panel and
    one shared legend sits to the right. Rows are selected as in the tables
    (`epoch`: see `snr_curve_series`). Returns the written paths (PNG, SVG).
    """
    groups = group_by_protocol(rows)
    if len(groups) != 1:
        raise ValueError(f"plot one (split, source) at a time; got {sorted(groups)}")
    (split, source), = groups
    methods = curve_methods(rows) if methods is None else list(methods)
    series = snr_curve_series(rows, methods, epoch)
    colours = {m: f"C{i % 10}" for i, m in enumerate(methods)}
    markers = {m: "osD^v<>ph*"[i // 10 % 10] for i, m in enumerate(methods)}
    n = max(1, len(series))
    fig = Figure(figsize=(3.8 * n + 1.8, 3.6))
    axes = fig.subplots(1, n, squeeze=False)[0]
    handles = {}
    for ax, (nt, lines) in zip(axes, series.items()):
        for method, s in lines.items():
            handles[method] = ax.errorbar(s.levels, s.means, yerr=s.stds, color=colours[method],
                                          marker=markers[method], ms=3, capsize=3, lw=1.2,
                                          label=display_name(method))
        ax.set_title(NOISE_DESCRIPTIONS.get(nt, nt), fontsize=10)
        ax.set_xlabel("input SNR (dB)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("output SNR (dB)")
    ordered = [m for m in methods if m in handles]
    if ordered:
        fig.legend([handles[m] for m in ordered], [display_name(m) for m in ordered],
                   loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    default = f"Output vs input SNR (mean ± std over seeds) — {split} split, {source} data"
    if epoch is not None:
        default += f", networks at epoch {epoch}"
    if source == "synthetic":
        default += " (SYNTHETIC)"
    fig.suptitle(title or default)
    fig.tight_layout()
    return _save(fig, path_stem)


# ------------------------------------------------------------ example windows

@dataclass
class Example:
    """One test window with its noisy input and the outputs of one or more methods."""

    clean: np.ndarray                  # (L, C) mV
    noisy: np.ndarray                  # (L, C) mV
    outputs: dict[str, np.ndarray]     # display name -> (L, C)
    noise_type: str
    snr_db: float
    fs: float = 360.0


_META_KEYS = {"clean", "noisy", "noise_type", "snr_db", "fs"}


def _scalar(z, key: str, default):
    return z[key].item() if key in z.files and z[key].ndim == 0 else default


def load_examples(path: str, method: str | None = None, prefer: tuple[str, float] = ("emb", 0.0),
                  warn=lambda msg: None) -> list[Example]:
    """Example windows from an examples.npz; never raises for a bad file (returns [] and warns).

    Two layouts are understood:
      - evaluation layout: "clean", "noisy" (L, C) and one (L, C) array per
        method display name (a method id such as "unet" is mapped to its display
        name), plus 0-d "noise_type", "snr_db" and optional "fs";
      - training-workdir layout: "clean", "noisy/{noise}/{snr}" and
        "denoised/{noise}/{snr}/{seed}", all from one method, which must be
        given as `method` (an id). Only one dataset is taken: `prefer` if present,
        else the first in protocol order, with the lowest seed's output.
    Arrays whose shape differs from "clean" are skipped with a warning.
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            if "clean" not in z.files:
                warn(f"{path}: no 'clean' array; skipped")
                return []
            if "noisy" in z.files:
                ex = _evaluation_layout(z, path, warn)
            else:
                ex = _workdir_layout(z, path, method, prefer, warn)
    except (OSError, ValueError, KeyError) as e:
        warn(f"{path}: unreadable examples file ({e}); skipped")
        return []
    return [ex] if ex is not None else []


def _check_shape(name: str, arr: np.ndarray, shape: tuple, path: str, warn) -> bool:
    if arr.shape != shape or not np.issubdtype(arr.dtype, np.number):
        warn(f"{path}: {name!r} has shape {arr.shape}, expected {shape}; skipped")
        return False
    return True


def _evaluation_layout(z, path: str, warn) -> Example | None:
    clean = np.asarray(z["clean"], float)
    if clean.ndim != 2:
        warn(f"{path}: 'clean' has shape {clean.shape}, expected (L, C); skipped")
        return None
    if not _check_shape("noisy", z["noisy"], clean.shape, path, warn):
        return None
    outputs = {display_name(k): np.asarray(z[k], float) for k in z.files
               if k not in _META_KEYS and _check_shape(k, z[k], clean.shape, path, warn)}
    return Example(clean, np.asarray(z["noisy"], float), outputs,
                   str(_scalar(z, "noise_type", "unknown noise")),
                   float(_scalar(z, "snr_db", math.nan)), float(_scalar(z, "fs", 360.0)))


def _workdir_layout(z, path: str, method: str | None, prefer, warn) -> Example | None:
    clean = np.asarray(z["clean"], float)
    datasets = []
    for k in z.files:
        parts = k.split("/")
        if parts[0] == "noisy" and len(parts) == 3:
            try:
                datasets.append((parts[1], float(parts[2]), k))
            except ValueError:
                continue
    if not datasets:
        warn(f"{path}: no 'noisy' or 'noisy/<noise>/<snr>' window; skipped")
        return None
    if method is None:
        warn(f"{path}: training-workdir layout but the method is unknown (results of one method "
             f"expected beside it); skipped")
        return None
    order = {t: i for i, t in enumerate(NOISE_TYPES)}
    datasets.sort(key=lambda d: (d[:2] != (prefer[0], float(prefer[1])), order.get(d[0], 99), d[1]))
    nt, snr, noisy_key = datasets[0]
    prefix = f"denoised/{noisy_key.split('/', 1)[1]}/"
    seeds = sorted((k for k in z.files if k.startswith(prefix)), key=lambda k: _seed_of(k))
    if not _check_shape(noisy_key, z[noisy_key], clean.shape, path, warn):
        return None
    outputs = {}
    if seeds and _check_shape(seeds[0], z[seeds[0]], clean.shape, path, warn):
        outputs[display_name(method)] = np.asarray(z[seeds[0]], float)
    return Example(clean, np.asarray(z[noisy_key], float), outputs, nt, snr)


def _seed_of(key: str) -> float:
    try:
        return float(key.rsplit("/", 1)[1])
    except ValueError:
        return math.inf


def merge_examples(examples: list[Example]) -> list[Example]:
    """Merge examples of the same dataset and the same clean/noisy window into one figure each."""
    merged: list[Example] = []
    for ex in examples:
        for m in merged:
            if ((m.noise_type, m.snr_db) == (ex.noise_type, ex.snr_db) and m.clean.shape == ex.clean.shape
                    and np.allclose(m.clean, ex.clean) and np.allclose(m.noisy, ex.noisy)):
                m.outputs.update(ex.outputs)
                break
        else:
            merged.append(Example(ex.clean, ex.noisy, dict(ex.outputs), ex.noise_type, ex.snr_db, ex.fs))
    return merged
