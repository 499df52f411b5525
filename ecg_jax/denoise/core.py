"""`Denoiser`: a trained network applied to a whole recording of any rate, length and lead count.

Pipeline, per lead pair (the networks take two leads):

  1. NaN gaps are bridged by straight lines between the valid samples around
     them (constant at the ends) for the network, and put back as NaN in the
     output at the same samples.
  2. Resample to 360 Hz (polyphase, `resampling.py`).
  3. Cut overlapping 256-sample windows (hop 128) on a global grid, normalise
     each lead with the weights' fixed training mean/std (mV), run the network
     (jit-compiled once for a fixed batch), de-normalise, average the members
     of an ensemble, and cross-fade the windows back together (`overlap.py`).
  4. Resample back to the input rate.

The signal is extended beyond both ends by point reflection (2 x[0] - x[i]),
so the first and last samples get full windows and filter support too. Every step only needs
samples near the ones it produces and works on global grids, so a recording
streams through in blocks (5 minutes by default) with enough context on each
side that the result equals the unblocked result: memory stays bounded for
any length, and outputs are written block by block.

Leads: the network takes exactly two. 1 lead is duplicated into both inputs
and output channel 0 is kept; more leads are processed in pairs (0, 1),
(2, 3), ..., an odd last lead paired with itself like a single lead.
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ecg_jax.denoise.overlap import crossfade_weights, cut_windows, overlap_add, windows_covering
from ecg_jax.denoise.resampling import MODEL_FS, Ratio, check_fs, resample_span
from ecg_jax.denoise.runs import restore_members, select_members
from ecg_jax.denoise.signals import NEEDS_FS, Recording, Writer, array_recording, extension, to_mv_factor
from ecg_jax.denoise.weights import SHIPPED_WEIGHTS, load_weights, member_variables, stack_variables
from ecg_jax.errors import DenoiseInputError, EcgJaxError
from ecg_jax.normalization import apply_in_mv

WINDOW = 256          # samples per network input (at 360 Hz)
CHANNELS = 2          # leads per network input
DEFAULT_HOP = 128     # window step: each sample is a cross-fade of two windows
DEFAULT_BATCH = 128   # windows per compiled call (one compile; CPU throughput is flat above ~64)
DEFAULT_BLOCK_SECONDS = 300.0
DEFAULT_WEIGHTS = SHIPPED_WEIGHTS
SCAN_CHUNK = 1 << 20  # samples per read when scanning a recording for NaN, flat leads

WindowFn = Callable[[np.ndarray], np.ndarray]   # (batch, 256, 2) float32 mV -> same


def min_samples(fs: float) -> int:
    """Shortest recording (samples at fs) that fills one network window at 360 Hz."""
    return max(2, math.ceil(WINDOW * fs / MODEL_FS))


def lead_pairs(n_leads: int) -> list[tuple[int, int]]:
    """(0, 1), (2, 3), ...; an odd last lead is paired with itself."""
    return [(i, min(i + 1, n_leads - 1)) for i in range(0, n_leads, 2)]


def ensemble_window_fn(model, variables_stacked, mean, std) -> WindowFn:
    """A jit-compiled (B, 256, 2) mV -> (B, 256, 2) mV function: the members' mean output.

    Members run one after another inside the program (lax.scan), so memory does
    not grow with their number; each uses its own fixed normalisation.
    """
    mean = jnp.asarray(mean, jnp.float32)
    std = jnp.asarray(std, jnp.float32)
    variables = jax.tree_util.tree_map(jnp.asarray, variables_stacked)
    k = int(mean.shape[0])

    @jax.jit
    def run(variables, mean, std, x):
        def one(total, member):
            v, m, s = member
            return apply_in_mv(model, v, x, m, s, plus=total), None
        total, _ = jax.lax.scan(one, jnp.zeros_like(x), (variables, mean, std))
        return total / k

    return lambda x: np.asarray(run(variables, mean, std, jnp.asarray(x, jnp.float32)))


@dataclasses.dataclass
class NanGaps:
    """Runs of NaN per lead: starts, stops and the valid values on either side (for bridging)."""
    starts: list[np.ndarray]
    stops: list[np.ndarray]
    left: list[np.ndarray]
    right: list[np.ndarray]

    @property
    def any(self) -> bool:
        return any(len(s) for s in self.starts)

    def bridge(self, x: np.ndarray, start: int) -> np.ndarray:
        """Fill the NaN of x (samples [start, start + len(x)) of the recording) by straight lines."""
        if not self.any:
            return x
        x = np.array(x, np.float64)
        stop = start + len(x)
        for lead in range(x.shape[1]):
            s, e = self.starts[lead], self.stops[lead]
            for i in range(np.searchsorted(e, start, side="right"), np.searchsorted(s, stop)):
                a, b = max(s[i], start), min(e[i], stop)
                t = np.arange(a, b)
                frac = (t - (s[i] - 1)) / (e[i] - s[i] + 1)   # 0 at the sample before the gap, 1 after it
                x[a - start:b - start, lead] = self.left[lead][i] + frac * (self.right[lead][i] - self.left[lead][i])
        return x

    def mask(self, start: int, stop: int, n_leads: int) -> np.ndarray | None:
        """Boolean (stop - start, leads) of the NaN samples in [start, stop), or None if there are none."""
        if not self.any:
            return None
        m = np.zeros((stop - start, n_leads), bool)
        for lead in range(n_leads):
            s, e = self.starts[lead], self.stops[lead]
            for i in range(np.searchsorted(e, start, side="right"), np.searchsorted(s, stop)):
                m[max(s[i], start) - start:min(e[i], stop) - start, lead] = True
        return m


def scan_recording(recording: Recording) -> NanGaps:
    """One pass over the recording: refuse it if too short, flat or all NaN; find its NaN gaps."""
    n, leads, fs = recording.n_samples, recording.n_leads, recording.fs
    need = min_samples(fs)
    if n < need:
        raise DenoiseInputError(f"{recording.path}: too short: {n} samples at {fs:g} Hz ({n / fs:.3f} s); "
                                f"the minimum is {need} samples ({WINDOW} at {MODEL_FS} Hz, {WINDOW / MODEL_FS:.2f} s)")
    lo, hi = np.full(leads, np.inf), np.full(leads, -np.inf)
    runs: list[list[tuple[int, int]]] = [[] for _ in range(leads)]
    for a in range(0, n, SCAN_CHUNK):
        x = recording.read(a, min(a + SCAN_CHUNK, n))
        if np.isinf(x).any():
            raise DenoiseInputError(
                f"{recording.path}: infinite values near sample {a + int(np.argwhere(np.isinf(x))[0, 0])}")
        nan = np.isnan(x)
        with np.errstate(invalid="ignore"):
            lo = np.fmin(lo, np.nanmin(np.where(nan, np.inf, x), axis=0))
            hi = np.fmax(hi, np.nanmax(np.where(nan, -np.inf, x), axis=0))
        if nan.any():
            edges = np.diff(np.pad(nan, ((1, 1), (0, 0))).astype(np.int8), axis=0)
            for lead in range(leads):
                for s, e in zip(np.flatnonzero(edges[:, lead] == 1), np.flatnonzero(edges[:, lead] == -1), strict=True):
                    if runs[lead] and runs[lead][-1][1] == a + s:   # continues a gap from the last chunk
                        runs[lead][-1] = (runs[lead][-1][0], a + e)
                    else:
                        runs[lead].append((a + s, a + e))
    names = recording.lead_names or [str(i) for i in range(leads)]
    for lead in range(leads):
        label = f"lead {lead} ({names[lead]})" if recording.lead_names else f"lead {lead}"
        if not np.isfinite(lo[lead]):
            raise DenoiseInputError(f"{recording.path}: {label} is all NaN: nothing to denoise")
        if lo[lead] == hi[lead]:
            raise DenoiseInputError(f"{recording.path}: {label} is flat (constant {lo[lead]:g} mV): nothing to denoise")
    gaps = NanGaps([], [], [], [])
    for lead in range(leads):
        s = np.asarray([r[0] for r in runs[lead]], np.int64)
        e = np.asarray([r[1] for r in runs[lead]], np.int64)
        before = [recording.read(i - 1, i)[0, lead] if i > 0 else np.nan for i in s]
        after = [recording.read(i, i + 1)[0, lead] if i < n else np.nan for i in e]
        left = np.where(np.isnan(before), after, before)   # a gap at an end: constant
        right = np.where(np.isnan(after), before, after)
        gaps.starts.append(s), gaps.stops.append(e), gaps.left.append(left), gaps.right.append(right)
    return gaps


# What millivolts of ECG can look like: the robust peak-to-peak amplitude of a lead (its 99th minus
# its 1st percentile) lies between these. A QRS complex is about 0.5-3 mV, so microvolts read as
# millivolts land above the upper bound and volts below the lower one.
PLAUSIBLE_MV = (0.01, 20.0)
AMPLITUDE_SAMPLES = 1 << 20   # at most this many samples per lead are looked at (evenly spread blocks)


def robust_peak_to_peak(recording: Recording) -> np.ndarray:
    """Per lead: the 99th minus the 1st percentile (mV) of its valid samples (NaN for an all-NaN lead)."""
    n = recording.n_samples
    if n <= AMPLITUDE_SAMPLES:
        x = recording.read(0, n)
    else:
        block = AMPLITUDE_SAMPLES // 64
        starts = np.linspace(0, n - block, 64).astype(np.int64)
        x = np.concatenate([recording.read(int(a), int(a) + block) for a in starts])
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # an all-NaN lead: NaN, reported elsewhere
        lo, hi = np.nanpercentile(x, [1, 99], axis=0)
    return hi - lo


def check_amplitude(recording: Recording) -> None:
    """Refuse a recording whose amplitude cannot be millivolts of ECG (`PLAUSIBLE_MV`), with a hint.

    Flat and all-NaN leads are left to `scan_recording`, which names them."""
    low, high = PLAUSIBLE_MV
    names = recording.lead_names or [str(i) for i in range(recording.n_leads)]
    for lead, p2p in enumerate(robust_peak_to_peak(recording)):
        if not np.isfinite(p2p) or p2p == 0 or low <= p2p <= high:
            continue
        label = f"lead {lead} ({names[lead]})" if recording.lead_names else f"lead {lead}"
        given = recording.array_units or (recording.units[lead] if recording.units else "mV")
        rule = (f"{label} has a peak-to-peak amplitude of {p2p:.4g} "
                f"{'mV' if given == 'mV' else f'mV (read as {given})'}"
                f" (99th - 1st percentile), which ECG in millivolts never has (the rule: {low:g} to {high:g} mV)")
        if extension(recording.path) in NEEDS_FS:
            for units, factor in (("uV", 1e-3), ("mV", 1.0), ("V", 1e3)):
                if units != given and low <= p2p * factor / to_mv_factor(given) <= high:
                    hint = f"if the values are in {units}, pass --units {units}"
                    break
            else:
                hint = "check what the values are (--units uV|mV|V)"
        else:
            hint = f"the file says its units are {given}; check its header (units, gain)"
        raise DenoiseInputError(f"{recording.path}: {rule}; {hint}")


def reflected_reader(recording: Recording, gaps: NanGaps) -> Callable[[int, int], np.ndarray]:
    """read(a, b) for any integers: the recording, gaps bridged, extended beyond its ends by point
    reflection (x[-i] = 2 x[0] - x[i]; constant past one full length).

    Point (odd) reflection keeps the extension's value and slope continuous at
    the ends, so neither the resampling filters nor the network see a kink
    there (a mirror, x[-i] = x[i], would fold a sloping baseline into a corner).
    """
    n = recording.n_samples
    first, last = gaps.bridge(recording.read(0, 1), 0)[0], gaps.bridge(recording.read(n - 1, n), n - 1)[0]

    def read(a: int, b: int) -> np.ndarray:
        if 0 <= a and b <= n:
            return gaps.bridge(recording.read(a, b), a)
        i = np.arange(a, b)
        source = np.clip(np.where(i < 0, -i, np.where(i >= n, 2 * (n - 1) - i, i)), 0, n - 1)
        lo, hi = int(source.min()), int(source.max()) + 1
        x = gaps.bridge(recording.read(lo, hi), lo)[source - lo]
        x = np.where((i < 0)[:, None], 2 * first - x, x)
        return np.where((i >= n)[:, None], 2 * last - x, x)

    return read


class Denoiser:
    """Denoise recordings: `d(x, fs)` for arrays, `d.denoise_recording(recording, writer)` for files.

    `window_fn` maps a (batch, 256, 2) float32 mV array to its denoised version;
    `from_variables` builds it from a network and (stacked) member variables.
    """

    def __init__(self, window_fn: WindowFn, hop: int = DEFAULT_HOP, batch: int = DEFAULT_BATCH,
                 block_seconds: float = DEFAULT_BLOCK_SECONDS, meta: dict | None = None):
        if WINDOW % hop:
            raise ValueError(f"hop {hop} must divide the window length {WINDOW}")
        self.window_fn, self.hop, self.batch, self.block_seconds = window_fn, hop, batch, block_seconds
        self.meta = meta or {}
        self._weights = crossfade_weights(WINDOW)

    @classmethod
    def from_variables(cls, model, variables_stacked, mean, std, meta: dict | None = None, **kwargs) -> "Denoiser":
        return cls(ensemble_window_fn(model, variables_stacked, mean, std), meta=meta, **kwargs)

    # -- arrays

    def __call__(self, x, fs: float, progress: bool = False) -> np.ndarray:
        """Denoise (samples,) or (samples, leads) mV sampled at fs Hz; returns the same shape."""
        x = np.asarray(x)
        out_dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float32
        if fs is None or not (np.isfinite(fs) and fs > 0):
            raise DenoiseInputError(f"sampling rate must be a positive number, got {fs}")
        recording = array_recording(x, float(fs))
        out = np.empty((recording.n_samples, recording.n_leads), out_dtype)
        at = 0
        for block in self.blocks(recording, progress=progress):
            out[at:at + len(block)] = block
            at += len(block)
        return out.reshape(x.shape)

    def denoise_recording(self, recording: Recording, writer: Writer, progress: bool = True) -> None:
        """Stream a recording through the network into `writer`, block by block."""
        for block in self.blocks(recording, progress=progress):
            writer.write(block)

    def blocks(self, recording: Recording, progress: bool = False, block_samples: int | None = None):
        """Yield the denoised recording (float64 mV) in consecutive blocks; NaN where the input was NaN."""
        from tqdm import tqdm

        if recording.fs is None:
            raise DenoiseInputError(f"{recording.path}: no sampling rate given")
        check_fs(recording.fs, recording.path)
        gaps = scan_recording(recording)
        read = reflected_reader(recording, gaps)
        ratio = Ratio.between(recording.fs)
        n = recording.n_samples
        step = block_samples or max(1, int(round(self.block_seconds * recording.fs)))
        with tqdm(total=round(n / recording.fs, 1), unit="s", desc="denoising", disable=not progress,
                  leave=False) as bar:
            for k0 in range(0, n, step):
                k1 = min(k0 + step, n)
                y = self._span(read, ratio, recording.n_leads, k0, k1)
                mask = gaps.mask(k0, k1, recording.n_leads)
                if mask is not None:
                    y[mask] = np.nan
                bar.update(round((k1 - k0) / recording.fs, 1))
                yield y

    # -- the block engine

    def _span(self, read, ratio: Ratio, n_leads: int, k0: int, k1: int) -> np.ndarray:
        """Denoised samples [k0, k1) (input rate) of the (mirror-extended) recording behind `read`."""
        back = ratio.inverse
        m0, m1 = (k0, k1) if ratio.identity else back.input_span(k0, k1)   # needed at 360 Hz
        w0, w1 = windows_covering(m0, m1, WINDOW, self.hop)
        z0, z1 = w0 * self.hop, (w1 - 1) * self.hop + WINDOW
        z = resample_span(read, ratio, z0, z1)
        denoised = self._denoise_360(z, n_leads)[m0 - z0:m1 - z0]
        if ratio.identity:
            return denoised
        y = back.apply(denoised)
        first = back.output_start(m0)
        return y[k0 - first:k1 - first]

    def _denoise_360(self, z: np.ndarray, n_leads: int) -> np.ndarray:
        """Windows of a 360 Hz span starting on the window grid, denoised and cross-faded: same shape."""
        pairs = lead_pairs(n_leads)
        windows = np.concatenate([cut_windows(z[:, list(p)], WINDOW, self.hop) for p in pairs])
        outputs = self.run_windows(windows).reshape(len(pairs), -1, WINDOW, CHANNELS)
        out = np.empty_like(z)
        for (i, j), o in zip(pairs, outputs, strict=True):
            merged = overlap_add(o, self.hop, self._weights)
            out[:, i] = merged[:, 0]
            if j != i:
                out[:, j] = merged[:, 1]
        return out

    def run_windows(self, windows: np.ndarray) -> np.ndarray:
        """(N, 256, 2) mV -> (N, 256, 2) mV through `window_fn` in fixed batches (one compile)."""
        n = len(windows)
        padded = -(-n // self.batch) * self.batch
        x = np.zeros((padded, WINDOW, CHANNELS), np.float32)
        x[:n] = windows
        out = np.concatenate([np.asarray(self.window_fn(x[i:i + self.batch]))
                              for i in range(0, padded, self.batch)])
        return out[:n]


class MissingWeightsError(EcgJaxError):
    """No weights file where one was expected."""


def load_denoiser(path: str | None = None, workdir: str | None = None, member: str | int = "all",
                  epoch: int | None = None, dataset: str | None = None, allow_changed_model_source: bool = False,
                  **kwargs) -> Denoiser:
    """A Denoiser from a weights file (default `weights/dancer.npz`) or a training workdir.

    `member`: "all" (the seed ensemble: members' outputs averaged) or one member index.
    `dataset`: "NOISE@SNR" (e.g. "emb@0"): only the members trained on that dataset.
    "all" over members of several datasets (a run over a noise type x SNR grid) is
    refused: they are different models with different normalisations, not a seed
    ensemble; pick a dataset or a member. With one dataset nothing needs choosing.
    `allow_changed_model_source`: use your own network although its file changed since it was
    trained (a workdir) or exported (a weights file). Extra keyword arguments (hop, batch,
    block_seconds) go to `Denoiser`.
    """
    if path and workdir:
        raise EcgJaxError("give either a weights file or a workdir, not both")
    if workdir:
        r = restore_members(workdir, member, epoch, dataset=dataset,
                            allow_changed_model_source=allow_changed_model_source)
        meta = {"network": r.config.model, "workdir": workdir, "members": r.members}
        return Denoiser.from_variables(r.model, r.variables, r.mean, r.std, meta=meta, **kwargs)
    path = path or DEFAULT_WEIGHTS
    if not os.path.exists(path):
        hint = ("export one from a training run with: ecg-jax export --workdir RUN --output FILE.npz, "
                "or pass --weights FILE or --workdir RUN")
        raise MissingWeightsError(f"no weights file at {path}; {hint}")
    model, variables, mean, std, meta = load_weights(path, allow_changed_model_source)
    k = len(mean)
    members = meta.get("members")
    datasets = None
    if isinstance(members, list) and len(members) == k and \
            all(isinstance(m, dict) and "noise_type" in m and "snr_db" in m for m in members):
        datasets = [(str(m["noise_type"]), float(m["snr_db"])) for m in members]
    indices = select_members(k, datasets, member, dataset, where=path)
    if indices != list(range(k)):
        variables = stack_variables([member_variables(variables, i) for i in indices])
        mean, std = mean[indices], std[indices]
        if isinstance(members, list) and len(members) == k:
            meta = {**meta, "members": [members[i] for i in indices]}
    return Denoiser.from_variables(model, variables, mean, std, meta=meta, **kwargs)
