"""Denoiser vs the filters people use: SNR gain on held-out records with real NSTDB noise.

Every method sees the same noisy stretches:

  clean   30 s two-lead stretches of the shipped model card's `test_records`
          (records never seen in training), `per_record` per record at evenly
          spaced starts (stretch k of n starts at (k + 0.5)/n of the free length).
  noise   NSTDB bw, em, ma, and emb = bw + em + ma (summed, then scaled as one
          noise), cut from the last `NOISE_HOLDOUT` of each NSTDB record at an
          offset drawn per stretch (seeded; one offset for all noise types and
          SNRs of a stretch). The fresh-noise training recipe draws its noise
          only from the part before (ecg_jax/train/fresh_noise.py), so neither
          the ECG nor the noise of the benchmark was seen in training.
  SNR     scaled over the whole stretch, both leads together (the protocol's
          rule): scale = sqrt(Pc / (Pn * 10**(snr/10))).

Scores, per stretch: SNR gain = SNR(clean, output) - SNR(clean, noisy) in dB,
both leads together, (a) raw and (b) with each lead's own mean removed from
clean, noisy and output alike, so that a filter is not penalised for
dropping the DC level. A cell (noise type, SNR, method, measure) reports the
mean and the standard deviation (ddof=1) over the stretches.

Mains cells: artificial 50 and 60 Hz mains interference with harmonics,
drifting frequency and slowly varying amplitude and phase
(ecg_jax.data.mains.mains_noise, seeded per stretch from its noise offset),
mixed at `MAINS_SNR_LEVELS` by the same rule; noise types "mains50", "mains60".

R-peak F1, per cell and method: NeuroKit2 `ecg_peaks` (default method, no
cleaning of its own) on lead 0 of the method's output, against the record's
`.atr` beat annotations inside the stretch (beat symbols only, `BEAT_SYMBOLS`;
rhythm, noise and other non-beat annotations left out), matched one to one
within `F1_TOLERANCE_S` (closest pairs first). A cell pools the true
positives, false positives and misses of its stretches (precision, recall
and F1 of the pooled counts; the mean of the per-stretch F1 is in the JSON).
Extra rows: the noisy input, and the clean stretch itself (a reference: what
the detector gets with no noise at all; the same in every cell). Without
neurokit2 the F1 part is skipped with one line that says so.

Methods: every weights file given (the full `load_denoiser` pipeline:
windows, cross-fade, ends), NeuroKit2 `ecg_clean` with methods "neurokit"
and "biosppy" per lead (optional: skipped with the reason when neurokit2 is
not installed), and a 4th-order Butterworth band-pass 0.5-40 Hz run forwards
and backwards (scipy `sosfiltfilt`: zero phase) per lead.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Callable, Mapping, Sequence

import numpy as np

from ecg_jax.atomic import write_text_atomic
from ecg_jax.denoise.core import DEFAULT_WEIGHTS, load_denoiser
from ecg_jax.denoise.weights import read_meta
from ecg_jax.errors import ConfigError, DataError

FS = 360.0
NOISE_TYPES = ("bw", "em", "ma", "emb")
RAW_NOISE = ("bw", "em", "ma")
SNR_LEVELS = (-4.0, 0.0, 4.0)
MEASURES = ("raw", "demeaned")
STRETCH_SECONDS = 30.0
PER_RECORD = 3
NOISE_HOLDOUT = 0.2          # the last fifth of every NSTDB record is benchmark noise only
SEED = 0
GOAL_MARGIN_DB = 1.0         # the goal: this much ahead of the best filter in every cell
BUTTER_ORDER, BUTTER_BAND = 4, (0.5, 40.0)

MAINS_TYPES = ("mains50", "mains60")
MAINS_SNR_LEVELS = (0.0, -6.0)
F1_TOLERANCE_S = 0.150
# WFDB's beat annotation codes (normal, bundle branch blocks, atrial/nodal/ventricular premature and escape
# beats, aberrated, fusion, paced, unclassifiable); everything else in an .atr file is not a beat.
BEAT_SYMBOLS = frozenset("NLRBAaJSVrFejnE/fQ?")
NOISY, CLEAN = "noisy input", "clean (reference)"

Method = Callable[[np.ndarray, float], np.ndarray]   # (n, leads) mV at fs -> same shape
Detector = Callable[[np.ndarray, float], np.ndarray]   # (n,) mV at fs -> R-peak sample indices


# ----------------------------------------------------------------------------- scoring

def snr_db(clean: np.ndarray, x: np.ndarray) -> float:
    """10 log10(sum clean^2 / sum (x - clean)^2) over every sample and lead."""
    clean, x = np.asarray(clean, np.float64), np.asarray(x, np.float64)
    return float(10.0 * np.log10(np.sum(clean ** 2) / np.sum((x - clean) ** 2)))


def demean(x: np.ndarray) -> np.ndarray:
    """Each lead (column) minus its own mean."""
    x = np.asarray(x, np.float64)
    return x - x.mean(axis=0, keepdims=True)


def snr_gains(clean: np.ndarray, noisy: np.ndarray, output: np.ndarray) -> dict[str, float]:
    """{"raw": gain, "demeaned": gain} in dB: output SNR minus input SNR, raw and with lead means removed."""
    return {"raw": snr_db(clean, output) - snr_db(clean, noisy),
            "demeaned": snr_db(demean(clean), demean(output)) - snr_db(demean(clean), demean(noisy))}


def mix_at_snr(clean: np.ndarray, noise: np.ndarray, snr: float) -> np.ndarray:
    """clean + scale * noise, scale making the whole stretch's SNR `snr` dB (both leads together)."""
    clean, noise = np.asarray(clean, np.float64), np.asarray(noise, np.float64)
    scale = np.sqrt(np.mean(clean ** 2) / (np.mean(noise ** 2) * 10.0 ** (snr / 10.0)))
    return clean + scale * noise


def match_peaks(true: Sequence[int], detected: Sequence[int], tolerance: int) -> dict[str, int]:
    """One-to-one matching of detected to true peaks within `tolerance` samples, closest pairs first.

    {"tp": matched pairs, "fp": detections left unmatched, "fn": true peaks left unmatched}.
    """
    true, detected = np.asarray(true, np.int64), np.asarray(detected, np.int64)
    pairs = sorted((abs(int(d) - int(t)), i, j) for i, t in enumerate(true) for j, d in enumerate(detected)
                   if abs(int(d) - int(t)) <= tolerance) if len(true) and len(detected) else []
    used_t, used_d = set(), set()
    for _, i, j in pairs:
        if i not in used_t and j not in used_d:
            used_t.add(i)
            used_d.add(j)
    tp = len(used_t)
    return {"tp": tp, "fp": len(detected) - tp, "fn": len(true) - tp}


def f1_scores(counts: Mapping[str, int]) -> dict[str, float]:
    """Precision, recall and F1 of {"tp", "fp", "fn"} (0 where undefined; F1 1 when there is nothing to find)."""
    tp, fp, fn = counts["tp"], counts["fp"], counts["fn"]
    return {"precision": tp / (tp + fp) if tp + fp else 0.0, "recall": tp / (tp + fn) if tp + fn else 0.0,
            "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0}


def peak_f1(true: Sequence[int], detected: Sequence[int], fs: float = FS,
            tolerance_s: float = F1_TOLERANCE_S) -> dict:
    """match_peaks within `tolerance_s` seconds, with precision, recall and F1."""
    counts = match_peaks(true, detected, int(round(tolerance_s * fs)))
    return {**counts, **f1_scores(counts)}


# ----------------------------------------------------------------------------- methods

def butterworth(x: np.ndarray, fs: float) -> np.ndarray:
    """4th-order Butterworth band-pass 0.5-40 Hz, forwards and backwards (zero phase), per lead."""
    from scipy.signal import butter, sosfiltfilt

    sos = butter(BUTTER_ORDER, BUTTER_BAND, btype="bandpass", fs=fs, output="sos")
    return sosfiltfilt(sos, np.asarray(x, np.float64), axis=0)


def neurokit_methods() -> tuple[dict[str, Method], str | None]:
    """NeuroKit2's `ecg_clean` methods, or ({}, why not) when neurokit2 is not installed."""
    try:
        import neurokit2 as nk
    except ImportError as e:
        return {}, f"neurokit2 is not installed ({e}); pip install neurokit2 to compare with it"

    def make(method: str) -> Method:
        def run(x, fs):
            x = np.asarray(x, np.float64)
            return np.stack([np.asarray(nk.ecg_clean(x[:, j], sampling_rate=int(round(fs)), method=method))
                             for j in range(x.shape[1])], axis=1)
        return run

    return {"NeuroKit2 (neurokit)": make("neurokit"), "NeuroKit2 (biosppy)": make("biosppy")}, None


def r_peak_detector() -> tuple[Detector | None, str | None]:
    """NeuroKit2's `ecg_peaks` as (signal, fs) -> R-peak indices, or (None, why not) without neurokit2."""
    try:
        import neurokit2 as nk
    except ImportError as e:
        return None, f"R-peak F1 skipped: neurokit2 is not installed ({e}); pip install neurokit2 for it"

    def detect(x, fs):
        try:
            _, info = nk.ecg_peaks(np.asarray(x, np.float64), sampling_rate=int(round(fs)))
        except Exception:   # neurokit2 gives up on some hopeless signals: no peaks found
            return np.zeros(0, np.int64)
        return np.asarray(info["ECG_R_Peaks"], np.int64)

    return detect, None


def network_method(weights: str) -> Method:
    d = load_denoiser(weights)
    return lambda x, fs: np.asarray(d(np.asarray(x, np.float32), fs=fs), np.float64)


def filter_methods() -> tuple[dict[str, Method], dict[str, str]]:
    """The reference filters, in table order, and {name: reason} for the ones skipped."""
    nk, why = neurokit_methods()
    methods = dict(nk)
    methods["Butterworth 0.5-40 Hz"] = butterworth
    skipped = {} if why is None else {"NeuroKit2 (neurokit)": why, "NeuroKit2 (biosppy)": why}
    return methods, skipped


# ----------------------------------------------------------------------------- data

@dataclasses.dataclass(frozen=True)
class Stretch:
    record: str
    start: int          # first sample in the MIT-BIH record
    noise_start: int    # first sample in the NSTDB records
    clean: np.ndarray   # (n, 2) mV


def stretch_starts(length: int, n: int, per_record: int) -> list[int]:
    """Evenly spaced starts: stretch k of `per_record` at (k + 0.5) / per_record of the free length."""
    free = length - n
    if free < 0:
        raise DataError(f"a record of {length} samples is shorter than one {n}-sample stretch")
    return [int((k + 0.5) * free / per_record) for k in range(per_record)]


def noise_region(length: int) -> tuple[int, int]:
    """[first, stop) of the benchmark's noise in an NSTDB record of `length` samples."""
    return int(round(length * (1.0 - NOISE_HOLDOUT))), length


def make_stretches(mitdb: Mapping[str, np.ndarray], noise_length: int, records: Sequence[str],
                   per_record: int, n: int, seed: int) -> list[Stretch]:
    lo, hi = noise_region(noise_length)
    if hi - lo < n:
        raise DataError(f"the benchmark noise region ({hi - lo} samples) is shorter than one stretch ({n})")
    rng = np.random.default_rng(seed)
    out = []
    for r in records:
        for start in stretch_starts(len(mitdb[r]), n, per_record):
            out.append(Stretch(r, start, int(rng.integers(lo, hi - n + 1)), mitdb[r][start:start + n]))
    return out


def noise_of(nstdb: Mapping[str, np.ndarray], noise_type: str, start: int, n: int) -> np.ndarray:
    """The noise of one stretch: one NSTDB record, the sum of the three for emb, or artificial mains.

    Mains ("mains50", "mains60") are drawn from a generator seeded by the stretch's noise offset and the
    frequency, so every method and SNR of a stretch sees the same interference.
    """
    if noise_type in MAINS_TYPES:
        from ecg_jax.data.mains import mains_noise  # lazy, as load_records

        f0 = float(noise_type[len("mains"):])
        return mains_noise(np.random.default_rng([int(start), int(f0)]), n, FS, frequency=f0, channels=2)
    parts = RAW_NOISE if noise_type == "emb" else (noise_type,)
    return sum(np.asarray(nstdb[p][start:start + n], np.float64) for p in parts)


def card_test_records(weights: str) -> list[str]:
    """The `test_records` of a weights file's model card (its meta)."""
    records = read_meta(weights).get("training_data", {}).get("test_records")
    if not records:
        raise ConfigError(f"{weights}: its model card names no test_records; pass --records")
    return [str(r) for r in records]


def beat_annotations(data_dir: str, record: str) -> np.ndarray:
    """Sample indices of the beats (BEAT_SYMBOLS) in a MIT-BIH record's .atr annotations."""
    import wfdb

    from ecg_jax.data.records import database_dir

    path = os.path.join(database_dir(data_dir, "mitdb"), record)
    try:
        ann = wfdb.rdann(path, "atr")
    except Exception as e:   # wfdb raises plain OSError/ValueError subclasses on missing or bad files
        raise DataError(f"cannot read the beat annotations {path}.atr: {type(e).__name__}: {e}") from None
    return np.asarray([t for t, sym in zip(ann.sample, ann.symbol, strict=True) if sym in BEAT_SYMBOLS], np.int64)


def load_records(data_dir: str, records: Sequence[str]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    # lazy: ecg_jax.data pulls in wfdb and pandas, which the rest of ecg_jax.denoise does not import
    from ecg_jax.data.records import load_mitdb, load_nstdb

    return load_mitdb(data_dir, list(records), verify=False), load_nstdb(data_dir, verify=False)


# ----------------------------------------------------------------------------- the run

def cells_of(noise_types: Sequence[str], snr_levels: Sequence[float], mains_types: Sequence[str] = (),
             mains_snr_levels: Sequence[float] = ()) -> list[tuple[str, float]]:
    """The (noise type, input SNR) cells: NSTDB types x snr_levels, then mains types x mains_snr_levels."""
    return ([(t, float(x)) for t in noise_types for x in snr_levels]
            + [(t, float(x)) for t in mains_types for x in mains_snr_levels])


def run_benchmark(methods: Mapping[str, Method], stretches: Sequence[Stretch], nstdb: Mapping[str, np.ndarray],
                  noise_types: Sequence[str] = NOISE_TYPES, snr_levels: Sequence[float] = SNR_LEVELS,
                  fs: float = FS, progress: Callable[[str], None] | None = None,
                  mains_types: Sequence[str] = (), mains_snr_levels: Sequence[float] = MAINS_SNR_LEVELS,
                  beats: Mapping[str, np.ndarray] | None = None, detector: Detector | None = None) -> dict:
    """Per-stretch gains {method: {noise: {snr: {measure: [gain per stretch]}}}} and seconds per method.

    With `beats` ({record: beat sample indices}) and a `detector`, also "peaks": per-stretch R-peak counts
    {method or NOISY: {noise: {snr: [{"tp", "fp", "fn"} per stretch]}}} and "clean_peaks" (the clean stretches).
    """
    cells = cells_of(noise_types, snr_levels, mains_types, mains_snr_levels)
    gains: dict = {m: {} for m in methods}
    for m in methods:
        for t, x in cells:
            gains[m].setdefault(t, {})[x] = {k: [] for k in MEASURES}
    scoring = beats is not None and detector is not None
    peaks: dict = {m: {} for m in [*methods, NOISY]} if scoring else {}
    for m in peaks:
        for t, x in cells:
            peaks[m].setdefault(t, {})[x] = []
    clean_peaks: list = []
    seconds = dict.fromkeys(methods, 0.0)
    n = len(stretches[0].clean)
    for i, st in enumerate(stretches):
        if scoring:
            true = beats[st.record]
            true = true[(true >= st.start) & (true < st.start + n)] - st.start
            clean_peaks.append(match_peaks(true, detector(st.clean[:, 0], fs), int(round(F1_TOLERANCE_S * fs))))
        noises: dict = {}
        for t, x in cells:
            if t not in noises:
                noises[t] = noise_of(nstdb, t, st.noise_start, n)
            noisy = mix_at_snr(st.clean, noises[t], x)
            if scoring:
                peaks[NOISY][t][x].append(match_peaks(true, detector(noisy[:, 0], fs),
                                                      int(round(F1_TOLERANCE_S * fs))))
            for name, fn in methods.items():
                tic = time.perf_counter()
                out = fn(noisy, fs)
                seconds[name] += time.perf_counter() - tic
                for k, v in snr_gains(st.clean, noisy, out).items():
                    gains[name][t][x][k].append(v)
                if scoring:
                    peaks[name][t][x].append(match_peaks(true, detector(np.asarray(out)[:, 0], fs),
                                                         int(round(F1_TOLERANCE_S * fs))))
        if progress is not None:
            progress(f"stretch {i + 1}/{len(stretches)} ({st.record} @ {st.start / fs:.0f} s)")
    return {"gains": gains, "seconds": seconds, "peaks": peaks, "clean_peaks": clean_peaks}


def _pooled(per_stretch: Sequence[Mapping[str, int]]) -> dict:
    counts = {k: int(sum(c[k] for c in per_stretch)) for k in ("tp", "fp", "fn")}
    mean_f1 = float(np.mean([f1_scores(c)["f1"] for c in per_stretch])) if per_stretch else 0.0
    return {**counts, **f1_scores(counts), "mean_stretch_f1": mean_f1, "n": len(per_stretch)}


def summarize_f1(peaks: Mapping, clean_peaks: Sequence[Mapping[str, int]], networks: Sequence[str],
                 filters: Sequence[str]) -> list[dict]:
    """One row per (noise type, SNR): pooled precision/recall/F1 per method, the noisy input and the clean
    reference, and each network's F1 margin over the best filter's."""
    rows = []
    if not peaks:
        return rows
    clean = _pooled(clean_peaks)
    for t, per_snr in peaks[NOISY].items():
        for x in per_snr:
            row = {"noise_type": t, "snr_db": float(x),
                   "methods": {m: _pooled(peaks[m][t][x]) for m in peaks}}
            row["methods"][CLEAN] = clean
            present = [f for f in filters if f in row["methods"]]
            if present:
                best = max(present, key=lambda f: row["methods"][f]["f1"])
                row["best_filter"] = best
                row["margins"] = {net: row["methods"][net]["f1"] - row["methods"][best]["f1"] for net in networks}
            rows.append(row)
    return rows


def f1_misses(rows: Sequence[dict], network: str) -> list[dict]:
    """The cells where `network`'s R-peak F1 is below the best filter's."""
    return [{"noise_type": r["noise_type"], "snr_db": r["snr_db"], "f1": round(r["methods"][network]["f1"], 4),
             "best_filter": r["best_filter"], "best_filter_f1": round(r["methods"][r["best_filter"]]["f1"], 4),
             "short_by": round(-r["margins"][network], 4)}
            for r in rows if "margins" in r and r["margins"][network] < 0]


def markdown_f1(rows: Sequence[dict], networks: Sequence[str], filters: Sequence[str], n_stretches: int) -> str:
    """R-peak F1 (%) per cell: networks, filters, the noisy input and the clean reference; best method in bold."""
    if not rows:
        return ""
    methods = [m for m in list(networks) + list(filters) if m in rows[0]["methods"]]
    lead = networks[0] if networks else None
    header = ["noise, input SNR"] + methods + [NOISY, CLEAN] + ([f"{lead} - best filter"] if lead and filters else [])
    out = [f"R-peak F1 in % (NeuroKit2 ecg_peaks on lead 0 vs .atr beats, one-to-one within "
           f"{F1_TOLERANCE_S * 1000:g} ms), pooled over {n_stretches} stretches:\n",
           "| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
    for r in rows:
        best = max(methods, key=lambda m: r["methods"][m]["f1"]) if methods else None
        cells = [f"**{100 * r['methods'][m]['f1']:.1f}**" if m == best else f"{100 * r['methods'][m]['f1']:.1f}"
                 for m in methods]
        cells += [f"{100 * r['methods'][NOISY]['f1']:.1f}", f"{100 * r['methods'][CLEAN]['f1']:.1f}"]
        if lead and "margins" in r:
            cells.append(f"{100 * r['margins'][lead]:+.1f}")
        out.append(f"| {r['noise_type']}, {r['snr_db']:g} dB | " + " | ".join(cells) + " |")
    out.append("")
    return "\n".join(out)


def summarize(gains: Mapping, networks: Sequence[str], filters: Sequence[str]) -> list[dict]:
    """One row per (noise type, SNR, measure): mean/std per method, and each network's margin over the best filter."""
    rows = []
    any_method = next(iter(gains.values()))
    for t, per_snr in any_method.items():
        for s in per_snr:
            for k in MEASURES:
                row = {"noise_type": t, "snr_db": float(s), "measure": k, "methods": {}}
                for m in gains:
                    g = np.asarray(gains[m][t][s][k], np.float64)
                    row["methods"][m] = {"mean": float(g.mean()), "std": float(g.std(ddof=1)) if len(g) > 1 else 0.0,
                                         "n": int(len(g))}
                present = [f for f in filters if f in row["methods"]]
                if present:
                    best = max(present, key=lambda f: row["methods"][f]["mean"])
                    row["best_filter"] = best
                    row["margins"] = {net: row["methods"][net]["mean"] - row["methods"][best]["mean"]
                                      for net in networks}
                rows.append(row)
    return rows


def misses(rows: Sequence[dict], network: str, goal: float = GOAL_MARGIN_DB) -> list[dict]:
    """The cells where `network` is less than `goal` dB ahead of the best filter, with the shortfall."""
    return [{"noise_type": r["noise_type"], "snr_db": r["snr_db"], "measure": r["measure"],
             "margin_db": round(r["margins"][network], 2), "short_by_db": round(goal - r["margins"][network], 2),
             "best_filter": r["best_filter"]}
            for r in rows if "margins" in r and r["margins"][network] < goal]


def markdown(rows: Sequence[dict], networks: Sequence[str], filters: Sequence[str], n_stretches: int) -> str:
    """One Markdown table per measure: mean ± std per method, best mean in bold, margin of the first network."""
    methods = [m for m in list(networks) + list(filters) if m in rows[0]["methods"]]
    lead = networks[0] if networks else None
    out = []
    for k in MEASURES:
        title = ("raw" if k == "raw" else "each lead's mean removed")
        out.append(f"SNR gain in dB ({title}), mean ± std over {n_stretches} stretches:\n")
        header = ["noise, input SNR"] + methods + ([f"{lead} - best filter"] if lead and filters else [])
        out.append("| " + " | ".join(header) + " |")
        out.append("| --- |" + " ---: |" * (len(header) - 1))
        for r in (r for r in rows if r["measure"] == k):
            best = max(methods, key=lambda m: r["methods"][m]["mean"])
            cells = []
            for m in methods:
                c = f"{r['methods'][m]['mean']:+.1f} ± {r['methods'][m]['std']:.1f}"
                cells.append(f"**{c}**" if m == best else c)
            if lead and "margins" in r:
                cells.append(f"{r['margins'][lead]:+.1f}")
            out.append(f"| {r['noise_type']}, {r['snr_db']:g} dB | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def benchmark(weights: Sequence[str], data_dir: str, records: Sequence[str] | None = None,
              per_record: int = PER_RECORD, seconds: float = STRETCH_SECONDS,
              noise_types: Sequence[str] = NOISE_TYPES, snr_levels: Sequence[float] = SNR_LEVELS,
              seed: int = SEED, filters: bool = True, progress: Callable[[str], None] | None = None,
              mains_types: Sequence[str] = MAINS_TYPES, mains_snr_levels: Sequence[float] = MAINS_SNR_LEVELS,
              f1: bool = True) -> dict:
    """The whole benchmark: the result dict (`report` of it is the printed text)."""
    weights = list(weights) or [DEFAULT_WEIGHTS]
    bad = [t for t in noise_types if t not in NOISE_TYPES] + [t for t in mains_types if t not in MAINS_TYPES]
    if bad:
        raise ConfigError(f"unknown noise type(s) {', '.join(bad)}; valid: {', '.join(NOISE_TYPES + MAINS_TYPES)}")
    if per_record < 1 or seconds <= 0:
        raise ConfigError("per_record must be >= 1 and seconds > 0")
    records = list(records) if records else card_test_records(DEFAULT_WEIGHTS if os.path.exists(DEFAULT_WEIGHTS)
                                                               else weights[0])
    names = _network_names(weights)
    networks = {name: network_method(w) for name, w in zip(names, weights, strict=True)}
    filter_fns, skipped = filter_methods() if filters else ({}, {})
    mitdb, nstdb = load_records(data_dir, records)
    n = int(round(seconds * FS))
    stretches = make_stretches(mitdb, min(len(v) for v in nstdb.values()), records, per_record, n, seed)
    detector, f1_skipped = r_peak_detector() if f1 else (None, "R-peak F1 not asked for")
    beats = {r: beat_annotations(data_dir, r) for r in records} if detector is not None else None
    run = run_benchmark({**networks, **filter_fns}, stretches, nstdb, noise_types, snr_levels, FS, progress,
                        mains_types, mains_snr_levels, beats, detector)
    rows = summarize(run["gains"], list(networks), list(filter_fns))
    f1_rows = summarize_f1(run["peaks"], run["clean_peaks"], list(networks), list(filter_fns))
    return {
        "setup": {"records": records, "per_record": per_record, "stretch_seconds": seconds, "fs": FS,
                  "n_stretches": len(stretches), "noise_types": list(noise_types),
                  "snr_levels": [float(s) for s in snr_levels], "seed": seed,
                  "mains_types": list(mains_types), "mains_snr_levels": [float(s) for s in mains_snr_levels],
                  "mains": "ecg_jax.data.mains.mains_noise, seeded per stretch by its noise offset and frequency",
                  "f1": f"NeuroKit2 ecg_peaks on lead 0 vs .atr beats ({''.join(sorted(BEAT_SYMBOLS))}), "
                        f"one-to-one within {F1_TOLERANCE_S * 1000:g} ms",
                  "noise_region": f"last {NOISE_HOLDOUT:.0%} of each NSTDB record, offset drawn per stretch",
                  "emb": "bw + em + ma summed, scaled as one noise",
                  "stretches": [{"record": s.record, "start": s.start, "noise_start": s.noise_start}
                                for s in stretches]},
        "weights": dict(zip(names, weights, strict=True)), "networks": list(networks), "filters": list(filter_fns),
        "skipped": skipped, "seconds": run["seconds"], "rows": rows,
        "misses": {net: misses(rows, net) for net in networks} if filter_fns else {},
        "f1_rows": f1_rows, "f1_skipped": f1_skipped,
        "f1_misses": {net: f1_misses(f1_rows, net) for net in networks} if filter_fns and f1_rows else {},
        "gains": run["gains"], "peaks": run["peaks"], "clean_peaks": run["clean_peaks"],
    }


def _network_names(weights: Sequence[str]) -> list[str]:
    names = []
    for w in weights:
        name = "shipped DANCER" if os.path.abspath(w) == os.path.abspath(DEFAULT_WEIGHTS) else os.path.basename(w)
        while name in names:
            name += "'"
        names.append(name)
    return names


def report(result: dict) -> str:
    """The Markdown table plus the goal's misses and the skipped methods, as printed."""
    text = markdown(result["rows"], result["networks"], result["filters"], result["setup"]["n_stretches"])
    lines = [text]
    for name, why in result["skipped"].items():
        lines.append(f"skipped {name}: {why}")
    for net, miss in result["misses"].items():
        if not miss:
            lines.append(f"{net}: at least {GOAL_MARGIN_DB:g} dB ahead of the best filter in every cell")
        else:
            lines.append(f"{net}: {len(miss)} of {len(result['rows'])} cells miss the goal "
                         f"({GOAL_MARGIN_DB:g} dB ahead of the best filter): "
                         + "; ".join(f"{m['noise_type']} {m['snr_db']:g} dB {m['measure']} by {m['short_by_db']:.1f}"
                                     for m in miss))
    if result.get("f1_rows"):
        lines += ["", markdown_f1(result["f1_rows"], result["networks"], result["filters"],
                                  result["setup"]["n_stretches"])]
    elif result.get("f1_skipped"):
        lines += ["", result["f1_skipped"]]
    for net, miss in result.get("f1_misses", {}).items():
        if not miss:
            lines.append(f"{net}: R-peak F1 at least the best filter's in every cell")
        else:
            lines.append(f"{net}: {len(miss)} of {len(result['f1_rows'])} cells miss the F1 goal (at least the "
                         "best filter's F1): " + "; ".join(
                             f"{m['noise_type']} {m['snr_db']:g} dB by {100 * m['short_by']:.2f} points "
                             f"({m['best_filter']})" for m in miss))
    return "\n".join(lines)


def write_json(result: dict, path: str) -> None:
    write_text_atomic(path, json.dumps(result, indent=1) + "\n")
