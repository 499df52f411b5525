"""The classical baselines: FFT and DWT of the reference, universal-threshold DWT and EMD of its final revision.

  classic.py    FFT and signed-maximum DWT (revisions "paper" and "first"), reference thresholds and grids
  universal.py  DWT with universal thresholds, per-(noise, SNR) reference settings and search grid ("final")
  emd.py        PyEMD, sum of a slice of the IMF rows, per-(noise, SNR) slices, process pool ("final")

Every denoiser takes batch-first `(B, L, C)` windows and works per window and
lead. `score_baselines_on_grid` runs `config.baselines.methods` on every
(noise type, SNR) dataset with the config's settings:

  - `baselines.dwt_rule`: "signed_max" (reference threshold or its search) or
    "universal" (the final revision's per-dataset settings, or their search);
  - `baselines.on_normalized`: the baseline sees the normalised noisy window
    `(x - mean) / std` (per-channel statistics of that dataset's training
    noisy windows, `prepared.norm_stats`), its output is de-normalised
    (`y * std + mean`) and scored against the raw clean window;
  - `baselines.threshold_search`: settings chosen per dataset on its training
    windows only (FFT/DWT thresholds, universal-DWT factor pairs; not EMD).

Scores are the means over all test windows (the shared metrics). Each row
records its revision and the settings it was scored with (`threshold`, or
`approx_factor`/`detail_factor`, or `imf_slice`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ecg_jax.baselines import emd as emd_lib
from ecg_jax.baselines import universal
from ecg_jax.baselines.classic import (
    DWT_THRESHOLD,
    DWT_THRESHOLD_GRID,
    DWT_WAVELET,
    FFT_THRESHOLD,
    FFT_THRESHOLD_GRID,
    dwt_denoise,
    fft_denoise,
    soft_threshold_signed_max,
)
from ecg_jax.baselines.emd import emd_denoise, reference_slice, slice_text
from ecg_jax.baselines.universal import dwt_universal_denoise, reference_settings
from ecg_jax.config_utils import as_list, resolve_config
from ecg_jax.errors import ConfigError
from ecg_jax.metrics import mean_metrics, to_floats
from ecg_jax.results import make_row, replace_rows
from ecg_jax.workdir import WorkdirLock

__all__ = [
    "BASELINES", "Baseline", "DWT_THRESHOLD", "DWT_THRESHOLD_GRID", "DWT_WAVELET", "FFT_THRESHOLD",
    "FFT_THRESHOLD_GRID", "denoise", "denormalize", "dwt_denoise", "dwt_universal_denoise", "emd_denoise",
    "fft_denoise", "get_baseline", "normalize", "reference_settings", "reference_slice", "row_settings",
    "run_baselines", "score_baseline", "score_baselines_on_grid", "score_denoised", "search_threshold",
    "search_universal", "settings_for", "soft_threshold_signed_max",
]

_mean_metrics_jit = None


def _mean_metrics(clean, denoised, noisy):
    # Compiled once per window shape: eager jax.numpy dispatch is ~40x slower on 8000 windows.
    global _mean_metrics_jit
    if _mean_metrics_jit is None:
        import jax
        _mean_metrics_jit = jax.jit(mean_metrics)
    return _mean_metrics_jit(clean, denoised, noisy)


@dataclass(frozen=True)
class Baseline:
    """A threshold denoiser: `denoise(noisy, threshold) -> denoised`, with its defaults."""

    display_name: str
    denoise: Callable[..., np.ndarray]
    default_threshold: float
    threshold_grid: tuple[float, ...]


# The single-threshold denoisers (FFT, signed-maximum DWT). Universal DWT and
# EMD take per-dataset settings instead: see `settings_for` and `denoise`.
BASELINES: dict[str, Baseline] = {
    "fft": Baseline("FFT", fft_denoise, FFT_THRESHOLD, FFT_THRESHOLD_GRID),
    "dwt": Baseline("DWT", dwt_denoise, DWT_THRESHOLD, DWT_THRESHOLD_GRID),
}
METHODS = ("fft", "dwt", "emd")


def get_baseline(method: str) -> Baseline:
    if method not in BASELINES:
        raise ConfigError(f"unknown threshold baseline {method!r}; valid: {', '.join(BASELINES)}")
    return BASELINES[method]


# ------------------------------------------------------------ normalisation

def normalize(noisy, stats) -> np.ndarray:
    """(x - mean) / std per channel, in float32 like the reference's float32 windows and statistics."""
    mean, std = (np.asarray(s, np.float32) for s in stats)
    return (np.asarray(noisy, np.float32) - mean) / std


def denormalize(y, stats) -> np.ndarray:
    """y * std + mean per channel (y keeps its precision, e.g. float64 DWT/EMD output)."""
    mean, std = (np.asarray(s, np.float32) for s in stats)
    return np.asarray(y) * std + mean


# ------------------------------------------------------------ settings

def settings_for(method: str, noise_type: str, snr_db: float, dwt_rule: str = "signed_max",
                 fft_threshold: float = FFT_THRESHOLD, dwt_threshold: float = DWT_THRESHOLD) -> dict:
    """The reference settings of `method` for one dataset, as the row fields that record them."""
    if method == "fft":
        return {"threshold": float(fft_threshold)}
    if method == "dwt" and dwt_rule == "signed_max":
        return {"dwt_rule": "signed_max", "threshold": float(dwt_threshold)}
    if method == "dwt" and dwt_rule == "universal":
        approx, detail = reference_settings(noise_type, snr_db)
        return universal_fields(approx, detail)
    if method == "dwt":
        raise ConfigError(f"unknown baselines.dwt_rule {dwt_rule!r}; valid: signed_max, universal")
    if method == "emd":
        return {"imf_slice": slice_text(reference_slice(noise_type, snr_db))}
    raise ConfigError(f"unknown baseline {method!r}; valid baselines: {', '.join(METHODS)}")


def universal_fields(approx, detail) -> dict:
    return {"dwt_rule": "universal",
            "approx_factor": approx if approx == universal.ZERO else float(approx),
            "detail_factor": float(detail)}


def _parse_slice(text: str) -> emd_lib.ImfSlice:
    start, stop = text.strip("[]").split(":")
    return (int(start) if start else None, int(stop) if stop else None)


def denoise(method: str, noisy, settings: dict, processes: int | None = None) -> np.ndarray:
    """Run one baseline with the settings of a row (see `settings_for`) on (B, L, C) windows."""
    if method == "fft":
        return fft_denoise(noisy, settings["threshold"])
    if method == "dwt" and settings.get("dwt_rule", "signed_max") == "signed_max":
        return dwt_denoise(noisy, settings["threshold"])
    if method == "dwt":
        return dwt_universal_denoise(noisy, settings["approx_factor"], settings["detail_factor"])
    if method == "emd":
        return emd_denoise(noisy, _parse_slice(settings["imf_slice"]), processes=processes)
    raise ConfigError(f"unknown baseline {method!r}; valid baselines: {', '.join(METHODS)}")


def row_settings(row: dict) -> dict:
    """The settings a results row was scored with, for `denoise` (a signed-max FFT/DWT row that
    records no threshold gets its baseline's default one)."""
    keys = ("threshold", "dwt_rule", "approx_factor", "detail_factor", "imf_slice")
    settings = {k: row[k] for k in keys if k in row}
    if row["method"] in BASELINES and "threshold" not in settings and settings.get("dwt_rule") != "universal":
        settings["threshold"] = get_baseline(row["method"]).default_threshold
    return settings


def denoise_like_row(row: dict, noisy, stats=None) -> np.ndarray:
    """A results row's baseline applied to (B, L, C) raw windows: normalised first when the row was
    (`on_normalized`; pass that dataset's `prepared.norm_stats`), output in mV."""
    if row.get("on_normalized") and stats is None:
        raise ValueError(f"row of {row['method']} was scored on normalised windows: pass its norm_stats")
    return _run(row["method"], noisy, row_settings(row), stats if row.get("on_normalized") else None)


# ------------------------------------------------------------ scoring

def score_denoised(clean, denoised, noisy) -> dict[str, float]:
    """METRIC_NAMES -> float: means over the windows (the numbers a results row stores)."""
    return to_floats(_mean_metrics(np.asarray(clean, np.float32), np.asarray(denoised, np.float32),
                                   np.asarray(noisy, np.float32)))


def _run(method: str, noisy, settings: dict, stats, processes: int | None = None) -> np.ndarray:
    """Denoise raw windows; with `stats` on the normalised windows, output de-normalised (mV)."""
    if stats is None:
        return denoise(method, noisy, settings, processes)
    return denormalize(denoise(method, normalize(noisy, stats), settings, processes), stats)


def score_baseline(method: str, clean, noisy, threshold: float | None = None, stats=None) -> dict[str, float]:
    """Denoise `noisy` (B, L, C) with FFT or signed-max DWT and score it against `clean`.

    `threshold=None` uses the reference threshold; `stats` (mean, std) runs it
    on the normalised windows and de-normalises the output.
    """
    baseline = get_baseline(method)
    t = baseline.default_threshold if threshold is None else float(threshold)
    return score_denoised(clean, _run(method, noisy, {"threshold": t}, stats), noisy)


def _best(candidates, score) -> tuple:
    """The candidate with the highest mean output SNR; ties go to the earliest, NaN never wins."""
    if not candidates:
        raise ConfigError("empty threshold grid")
    best, best_snr = candidates[0], -np.inf
    for cand in candidates:
        snr = score(cand)["snr_db"]
        if snr > best_snr:  # False for NaN
            best, best_snr = cand, snr
    return best


def search_threshold(method: str, clean_train, noisy_train, grid: Sequence[float] | None = None,
                     stats=None) -> float:
    """The grid threshold (FFT, signed-max DWT) with the best mean output SNR on the given windows.

    Only pass training windows: the choice must not see the test set.
    """
    baseline = get_baseline(method)
    grid = tuple(baseline.threshold_grid if grid is None else grid)
    if not grid:
        raise ConfigError(f"empty threshold grid for baseline {method!r}")
    return float(_best(grid, lambda t: score_baseline(method, clean_train, noisy_train, t, stats)))


def search_universal(clean_train, noisy_train, grid=None, stats=None) -> tuple:
    """(approximation, detail) of `universal.search_grid()` with the best mean output SNR on the
    given (training) windows."""
    grid = list(universal.search_grid() if grid is None else grid)
    return _best(grid, lambda ad: score_denoised(
        clean_train, _run("dwt", noisy_train, universal_fields(*ad), stats), noisy_train))


def _choose_settings(method: str, b, noise_type: str, snr, train, stats_of) -> dict:
    rule = b.get("dwt_rule", "signed_max")
    if not b.threshold_search:
        return settings_for(method, noise_type, snr, rule, b.fft_threshold, b.dwt_threshold)
    noisy_train = train.noisy(noise_type, snr)
    if method == "dwt" and rule == "universal":
        return universal_fields(*search_universal(train.clean, noisy_train, stats=stats_of()))
    t = search_threshold(method, train.clean, noisy_train, stats=stats_of())
    return {"threshold": t} if method == "fft" else {"dwt_rule": "signed_max", "threshold": t}


def config_methods(config) -> tuple[str, ...]:
    """config.baselines.methods as a tuple (a comma string from the command line is split)."""
    return tuple(as_list(config.baselines.get("methods", ("fft", "dwt"))))


def check_methods(config, methods: Sequence[str]) -> None:
    """Refuse unknown methods and datasets without reference settings before any work."""
    b = config.baselines
    for m in methods:
        if m not in METHODS:
            raise ConfigError(f"unknown baseline {m!r}; valid baselines: {', '.join(METHODS)}")
    if "emd" in methods and b.threshold_search:
        raise ConfigError("baselines.threshold_search is not available for EMD (its IMF slices are the "
                          "reference's fixed choices); run EMD with threshold_search=False")
    for nt in config.noise_types:
        for snr in config.snr_levels:
            if "emd" in methods:
                reference_slice(nt, snr)
            if "dwt" in methods and b.get("dwt_rule", "signed_max") == "universal" and not b.threshold_search:
                reference_settings(nt, snr)


def score_baselines_on_grid(config, prepared, methods: Sequence[str] | None = None,
                            processes: int | None = None) -> list[dict]:
    """Result rows of `methods` (default `config.baselines.methods`) on every (noise type, SNR)
    of a resolved config, with the config's rule, normalisation and settings (module docstring).

    Rows use the shared results schema, seed None, and record the revision
    and the settings they were scored with.
    """
    b = config.baselines
    methods = config_methods(config) if methods is None else tuple(as_list(methods))
    check_methods(config, methods)
    on_normalized = bool(b.get("on_normalized", False))
    revision = config.data.get("revision", "paper")
    train, test = prepared.train, prepared.test
    rows = []
    for noise_type in config.noise_types:
        for snr in config.snr_levels:
            noisy_test = test.noisy(noise_type, snr)
            stats = prepared.norm_stats(noise_type, snr) if on_normalized else None
            for m in methods:
                settings = _choose_settings(m, b, noise_type, snr, train, lambda stats=stats: stats)
                denoised = _run(m, noisy_test, settings, stats, processes)
                rows.append(make_row(
                    method=m, noise_type=noise_type, snr_db=snr, seed=None, split=config.data.split,
                    source=prepared.source, metrics=score_denoised(test.clean, denoised, noisy_test),
                    revision=revision, **settings, on_normalized=on_normalized,
                    threshold_search=bool(b.threshold_search), n_test=int(prepared.n_test)))
    return rows


def run_baselines(config, workdir: str, methods: Sequence[str] | None = None) -> list[dict]:
    """Score `methods` (default `config.baselines.methods`) on every dataset of `config`;
    write and return the result rows.

    Writes <workdir>/data_card.json and the rows into <workdir>/results.jsonl, replacing a row of the same
    run (`results.replace_rows`): run twice, a dataset still has one row per method. The workdir is locked
    meanwhile (`WorkdirLock`): a second run at the same time stops with one line.
    """
    # lazy: ecg_jax.data pulls in wfdb and pandas, which scoring prepared data given by a caller does not need
    from ecg_jax.data import data_card, prepare_data, write_data_card

    config = resolve_config(config)
    methods = config_methods(config) if methods is None else tuple(as_list(methods))
    check_methods(config, methods)
    os.makedirs(workdir, exist_ok=True)
    with WorkdirLock(workdir):
        prepared = prepare_data(config)
        write_data_card(data_card(prepared, config), workdir)
        rows = score_baselines_on_grid(config, prepared, methods)
        replace_rows(os.path.join(workdir, "results.jsonl"), rows)
    return rows
