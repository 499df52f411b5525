"""Built-in synthetic ECG and noise records: the offline stand-in for PhysioNet.

Used when no PhysioNet folder is configured, so that every command runs end to
end without downloads. The arrays have the shapes and units of the real data
(2 channels, mV, 360 Hz by default), but they are NOT MIT-BIH/NSTDB: every
output must say so (`SYNTHETIC_SOURCE_NOTE`).

ECG: a vectorised take on the dynamical model of McSharry et al. (ECGSYN,
IEEE TBME 2003). A phase theta(t) runs around a limit cycle at the
instantaneous heart rate; each beat is the sum of five Gaussian bumps in phase
(P, Q, R, S, T), z = sum_i a_i exp(-dtheta_i^2 / (2 b_i^2)). Instead of
integrating ECGSYN's ODE we integrate the phase with a cumulative sum and
evaluate z directly, which is exact for the phase model and vectorises. Heart
rate variability comes from an RR tachogram with ECGSYN's bimodal spectrum: a
low-frequency (Mayer wave, ~0.1 Hz) and a high-frequency (respiratory,
~0.25 Hz) Gaussian peak with random phases. As in ECGSYN the bump widths scale
with sqrt(mean heart rate / 60) and the P/T positions move with it.

Noise: three records named like NSTDB's, whose whole-record RMS per channel is
set to the values measured on the real NSTDB records (see `NOISE_RMS_MV`):
  bw  baseline wander: random sinusoids + band-limited Brownian drift, < 0.7 Hz
  em  electrode motion: drift + bursts of 1/f motion noise (0.7-6 Hz) + decaying steps
  ma  muscle artefact: broadband coloured noise (most power 10-60 Hz, tails from
      5 to 150 Hz, like the real record's fast part) under a slow log-normal
      envelope, plus some drift (see `_MA_DRIFT_SHARE`)
The two channels of each noise record are correlated but not identical.

Randomness: every record has its own generator seeded from (seed, stream,
index, part), so record k never depends on how many records were asked for.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import numpy as np

from ecg_jax.errors import ConfigError

SYNTHETIC_SOURCE_NOTE = "SYNTHETIC data (built-in ECGSYN-style generator), not PhysioNet"

# Generator streams; the last seed word ("part") is never 0 because numpy's
# SeedSequence treats trailing zeros as absent ([s, k] == [s, k, 0]).
_ECG_STREAM, _NOISE_STREAM = 1, 2
_PARAMETER_PART, _SIGNAL_PART = 1, 2

# ---------------------------------------------------------------- ECG morphology
# Phase positions and widths (rad, at 60 bpm, where 1 rad = 159 ms) of P, Q, R,
# S, T. Positions are ECGSYN's except Q and S, which sit closer to R; the P and
# QRS bumps are narrower than ECGSYN's so that the QRS lasts ~90 ms and the P
# wave ~100 ms, as in MIT-BIH.
_WAVE_ANGLES = np.array([-math.pi / 3, -0.17, 0.0, 0.17, math.pi / 2])
_WAVE_WIDTHS = np.array([0.18, 0.065, 0.065, 0.065, 0.4])
# ECGSYN moves P and T by sqrt(hr factor), Q and S by the hr factor, R not at all.
_ANGLE_HR_EXPONENT = np.array([0.5, 1.0, 0.0, 1.0, 0.5])
# Peak amplitudes (mV) of P, Q, R, S, T for the lead shapes of MIT-BIH: the
# first lead is modified limb lead II (tall R); the second is mostly V1 (small
# r, deep S), sometimes V2 or V5.
_LEAD_AMPLITUDES_MV = {
    "MLII": np.array([0.15, -0.12, 1.1, -0.25, 0.30]),
    "V1": np.array([0.08, -0.02, 0.30, -0.90, 0.10]),
    "V2": np.array([0.10, -0.05, 0.60, -0.80, 0.35]),
    "V5": np.array([0.10, -0.10, 1.00, -0.30, 0.30]),
}
_SECOND_LEAD_KINDS = ("V1", "V2", "V5")
_SECOND_LEAD_PROBABILITIES = (0.8, 0.1, 0.1)  # MIT-BIH: 40 of 48 records have V1

# Tachogram synthesis: sampled at 4 Hz (Nyquist 2 Hz > the 0.1/0.25 Hz peaks);
# at least 2048 points so the 0.01 Hz-wide peaks are resolved even for short
# records.
_TACHOGRAM_RATE_HZ = 4.0
_TACHOGRAM_MIN_POINTS = 2048
_TACHOGRAM_PEAK_WIDTH_HZ = 0.01

# ---------------------------------------------------------------- noise
NOISE_NAMES = ("bw", "em", "ma")
# Whole-record RMS per channel (mV) of the real NSTDB records (wfdb p_signal).
NOISE_RMS_MV = {"bw": (0.47, 0.18), "em": (0.73, 0.21), "ma": (0.19, 0.19)}
# Correlation between the two channels, as in the real records (-0.69, -0.44, 0.11).
NOISE_CHANNEL_CORRELATION = {"bw": -0.7, "em": -0.45, "ma": 0.15}
# Share of the ma power that is slow drift. The real `ma` record is ~85% drift
# (< 1 Hz); the stand-in keeps muscle noise dominant so that it differs
# clearly from `bw`.
_MA_DRIFT_SHARE = 0.3


@dataclasses.dataclass(frozen=True)
class EcgRecordParameters:
    """What varies between synthetic ECG records (drawn by `ecg_record_parameters`)."""

    heart_rate_bpm: float          # mean heart rate
    rr_cv: float                   # RR standard deviation / mean RR
    lf_hz: float                   # Mayer-wave peak of the tachogram
    hf_hz: float                   # respiratory peak (also drives the respiratory effects)
    lf_hf_ratio: float             # power ratio of the two tachogram peaks
    second_lead: str               # "V1", "V2" or "V5"
    amplitudes_mv: np.ndarray      # (5, 2): P, Q, R, S, T peak amplitude per lead
    angle_jitter: np.ndarray       # (5,): added to the wave positions (rad)
    width_scale: np.ndarray        # (5,): multiplies the wave widths
    offset_mv: np.ndarray          # (2,): baseline offset per lead
    respiration_baseline_mv: np.ndarray  # (2,): respiratory baseline sway per lead
    respiration_modulation: float  # relative beat-amplitude modulation by respiration
    noise_mv: float                # std of the small broadband recording noise


def _rng(seed: int, stream: int, index: int, part: int) -> np.random.Generator:
    if int(seed) < 0 or int(index) < 0:
        raise ConfigError(f"the synthetic source needs a data seed >= 0, got {seed}")
    return np.random.default_rng([int(seed), stream, int(index), part])


def _check_arguments(n_samples: int, fs: float) -> None:
    if int(n_samples) < 1:
        raise ConfigError(f"synthetic records need at least 1 sample, got {n_samples}")
    if not float(fs) > 0:
        raise ConfigError(f"sampling frequency must be positive, got {fs}")


# ---------------------------------------------------------------- ECG

def ecg_record_parameters(seed: int, index: int) -> EcgRecordParameters:
    """The random make-up of synthetic ECG record `index` for data seed `seed`."""
    rng = _rng(seed, _ECG_STREAM, index, _PARAMETER_PART)
    second_lead = str(rng.choice(_SECOND_LEAD_KINDS, p=_SECOND_LEAD_PROBABILITIES))
    base = np.stack([_LEAD_AMPLITUDES_MV["MLII"], _LEAD_AMPLITUDES_MV[second_lead]], axis=1)
    # One overall gain per lead (records differ a lot in QRS size) times a
    # per-wave factor; the R wave of lead 1 stays well above its T wave.
    gain = rng.uniform(0.8, 2.2, size=2)
    per_wave = rng.uniform(0.75, 1.25, size=(5, 2))
    return EcgRecordParameters(
        heart_rate_bpm=float(rng.uniform(55.0, 100.0)),
        rr_cv=float(rng.uniform(0.02, 0.05)),
        lf_hz=float(rng.uniform(0.08, 0.12)),
        hf_hz=float(rng.uniform(0.2, 0.3)),
        lf_hf_ratio=float(rng.uniform(0.5, 2.0)),
        second_lead=second_lead,
        amplitudes_mv=base * gain[None, :] * per_wave,
        angle_jitter=rng.normal(0.0, 0.02, size=5),
        width_scale=rng.uniform(0.85, 1.15, size=5),
        offset_mv=np.array([rng.uniform(-0.9, -0.1), rng.uniform(-0.6, 0.15)]),
        respiration_baseline_mv=rng.uniform(0.01, 0.05, size=2),
        respiration_modulation=float(rng.uniform(0.02, 0.08)),
        noise_mv=float(rng.uniform(0.004, 0.012)),
    )


def _rr_tachogram(rng: np.random.Generator, params: EcgRecordParameters,
                  n_samples: int, fs: float) -> np.ndarray:
    """RR interval (s) at every sample: ECGSYN's bimodal spectrum, random phases."""
    needed = int(math.ceil(n_samples / fs * _TACHOGRAM_RATE_HZ)) + 2
    n_points = max(_TACHOGRAM_MIN_POINTS, 1 << (needed - 1).bit_length())
    freqs = np.fft.rfftfreq(n_points, 1.0 / _TACHOGRAM_RATE_HZ)
    lf_share = params.lf_hf_ratio / (1.0 + params.lf_hf_ratio)
    psd = (lf_share * np.exp(-0.5 * ((freqs - params.lf_hz) / _TACHOGRAM_PEAK_WIDTH_HZ) ** 2)
           + (1.0 - lf_share) * np.exp(-0.5 * ((freqs - params.hf_hz) / _TACHOGRAM_PEAK_WIDTH_HZ) ** 2))
    phases = np.exp(2j * np.pi * rng.random(freqs.size))
    variation = np.fft.irfft(np.sqrt(psd) * phases, n_points)[:needed]
    variation = (variation - variation.mean()) / max(variation.std(), 1e-12)
    mean_rr = 60.0 / params.heart_rate_bpm
    rr_coarse = mean_rr * (1.0 + params.rr_cv * variation)
    t_coarse = np.arange(needed) / _TACHOGRAM_RATE_HZ
    return np.interp(np.arange(n_samples) / fs, t_coarse, rr_coarse)


def _wave_bumps(phase: np.ndarray, params: EcgRecordParameters) -> np.ndarray:
    """(5, n) Gaussian bumps exp(-dtheta^2 / 2b^2) of P, Q, R, S, T in float32."""
    hr_factor = math.sqrt(params.heart_rate_bpm / 60.0)
    angles = _WAVE_ANGLES * hr_factor ** _ANGLE_HR_EXPONENT + params.angle_jitter
    widths = _WAVE_WIDTHS * params.width_scale * hr_factor
    bumps = np.empty((5, phase.size), np.float32)
    two_pi = np.float32(2 * np.pi)
    for i, (angle, width) in enumerate(zip(angles, widths, strict=True)):
        d = phase - np.float32(angle)
        # Wrap to (-pi, pi] only where the bump reaches round the cycle (the T
        # wave); for the others exp(-(pi - |angle|)^2 / 2b^2) < 1e-14.
        if (math.pi - abs(angle)) / width < 8.0:
            d -= two_pi * np.rint(d / two_pi)
        d *= np.float32(1.0 / (math.sqrt(2.0) * width))
        np.square(d, out=d)
        np.negative(d, out=d)
        np.exp(d, out=bumps[i])
    return bumps


def synthesize_ecg_record(index: int, n_samples: int, fs: float = 360.0,
                          seed: int = 0) -> np.ndarray:
    """One synthetic 2-lead ECG record, (n_samples, 2) float32 in mV."""
    _check_arguments(n_samples, fs)
    params = ecg_record_parameters(seed, index)
    rng = _rng(seed, _ECG_STREAM, index, _SIGNAL_PART)
    rr = _rr_tachogram(rng, params, n_samples, fs)
    # Phase in cycles, summed in float64 (10^6 samples), wrapped to [-1/2, 1/2]
    # cycle before going to float32 radians.
    cycles = rng.uniform(-0.5, 0.5) + np.cumsum(1.0 / (rr * fs))
    cycles -= np.rint(cycles)
    phase = (2.0 * np.pi * cycles).astype(np.float32)
    # Leads as rows, (2, n): contiguous per lead, which keeps the products fast.
    ecg = np.einsum("wl,wn->ln", params.amplitudes_mv.astype(np.float32),
                    _wave_bumps(phase, params))

    # Respiration: beat amplitude modulation (electrical axis) and baseline sway.
    t = np.arange(n_samples, dtype=np.float32) / np.float32(fs)
    respiration = np.sin(np.float32(2 * np.pi * params.hf_hz) * t
                         + np.float32(rng.uniform(0, 2 * np.pi)))
    ecg *= 1.0 + np.float32(params.respiration_modulation) * respiration
    ecg += params.respiration_baseline_mv.astype(np.float32)[:, None] * respiration
    ecg += params.offset_mv.astype(np.float32)[:, None]
    # Recording noise: uniform like ADC quantisation noise (and 3x cheaper to
    # draw than Gaussian), scaled to standard deviation noise_mv.
    noise = rng.random((2, n_samples), dtype=np.float32) - np.float32(0.5)
    ecg += np.float32(params.noise_mv * math.sqrt(12.0)) * noise
    return np.ascontiguousarray(ecg.T)


def synthesize_ecg_records(n_records: int, n_samples: int, fs: float = 360.0,
                           seed: int = 0) -> dict[str, np.ndarray]:
    """Records "syn000", "syn001", ... (sorted), each (n_samples, 2) float32 mV."""
    if int(n_records) < 1:
        raise ConfigError(f"need at least 1 synthetic record, got {n_records}")
    digits = max(3, len(str(int(n_records) - 1)))  # names sort in index order
    return {f"syn{k:0{digits}d}": synthesize_ecg_record(k, n_samples, fs, seed)
            for k in range(int(n_records))}


# ---------------------------------------------------------------- noise

Shape = Callable[[np.ndarray], np.ndarray]


def _band(low_hz: float | None, high_hz: float | None, order: int = 2) -> Shape:
    """Butterworth-like magnitude response (high-pass at low_hz, low-pass at high_hz)."""
    def shape(f: np.ndarray) -> np.ndarray:
        gain = np.ones_like(f)
        if low_hz is not None:
            gain = gain / np.sqrt(1.0 + (low_hz / np.maximum(f, 1e-12)) ** (2 * order))
        if high_hz is not None:
            gain = gain / np.sqrt(1.0 + (f / high_hz) ** (2 * order))
        return gain
    return shape


def _drift_shape(cutoff_hz: float) -> Shape:
    """Brownian (1/f^2 power) drift above 0.01 Hz with a steep low-pass at cutoff_hz."""
    def shape(f: np.ndarray) -> np.ndarray:
        brownian = 1.0 / np.sqrt(f ** 2 + 0.01 ** 2)
        return np.where(f > 0, brownian, 0.0) * _band(None, cutoff_hz, order=8)(f)
    return shape


def _motion_shape(f: np.ndarray) -> np.ndarray:
    """Electrode motion: equal power per octave (1/f) from 0.7 Hz, falling off above 6 Hz."""
    return _band(0.7, 6.0, order=3)(f) / np.sqrt(np.maximum(f, 0.1))


def _unit(x: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance along the last axis (all-zero rows stay zero)."""
    x = x - x.mean(axis=-1, keepdims=True)
    std = x.std(axis=-1, keepdims=True)
    return x / np.where(std > 0, std, 1.0)


def _coloured(rng: np.random.Generator, n: int, fs: float, shape: Shape,
              count: int = 2) -> np.ndarray:
    """`count` independent unit-variance Gaussian processes with |spectrum| = shape(f)."""
    spectrum = np.fft.rfft(rng.standard_normal((count, n)), axis=-1)
    spectrum *= shape(np.fft.rfftfreq(n, 1.0 / fs))
    return _unit(np.fft.irfft(spectrum, n, axis=-1))


def _correlate(pair: np.ndarray, rho: float) -> np.ndarray:
    """Two unit processes -> channels with correlation rho (channel 0 unchanged)."""
    return np.stack([pair[0], rho * pair[0] + math.sqrt(1.0 - rho ** 2) * pair[1]])


def _sinusoids(rng: np.random.Generator, n: int, fs: float, low_hz: float,
               high_hz: float, count: int) -> np.ndarray:
    """Two independent unit-variance sums of `count` random sinusoids."""
    t = np.arange(n) / fs
    out = np.zeros((2, n))
    for channel in range(2):
        for freq, amp, phase in zip(rng.uniform(low_hz, high_hz, count),
                                    rng.rayleigh(1.0, count), rng.uniform(0, 2 * np.pi, count), strict=True):
            out[channel] += amp * np.sin(2 * np.pi * freq * t + phase)
    return _unit(out)


def _baseline_wander(rng: np.random.Generator, n: int, fs: float, rho: float) -> np.ndarray:
    # Respiration-like sways on top of a wandering drift (NSTDB bw: 95% of its
    # power below 0.3 Hz).
    sines = _correlate(_sinusoids(rng, n, fs, 0.05, 0.35, count=6), rho)
    drift = _correlate(_coloured(rng, n, fs, _drift_shape(0.4)), rho)
    return math.sqrt(0.3) * sines + math.sqrt(0.7) * drift


def _burst_envelope(rng: np.random.Generator, n: int, fs: float,
                    onsets: np.ndarray) -> np.ndarray:
    """Sum of smooth-edged bursts (0.5-3 s long, log-normal strength) at `onsets`."""
    envelope = np.zeros(n)
    for onset in onsets:
        length = int(rng.uniform(0.5, 3.0) * fs)
        burst = np.hanning(length) ** 0.25 * rng.lognormal(0.0, 0.5)  # flat top, soft edges
        stop = min(n, onset + length)
        envelope[onset:stop] += burst[:stop - onset]
    return envelope


def _decaying_steps(rng: np.random.Generator, n: int, fs: float, onsets: np.ndarray,
                    rho: float) -> np.ndarray:
    """Electrode-motion steps: sudden shifts that relax exponentially (0.3-1.5 s)."""
    steps = np.zeros((2, n))
    amplitudes = _correlate(rng.standard_normal((2, onsets.size)), rho)
    for k, onset in enumerate(onsets):
        tau = rng.uniform(0.3, 1.5) * fs
        stop = min(n, onset + int(6 * tau))
        steps[:, onset:stop] += amplitudes[:, k:k + 1] * np.exp(-np.arange(stop - onset) / tau)
    return _unit(steps)


def _electrode_motion(rng: np.random.Generator, n: int, fs: float, rho: float) -> np.ndarray:
    # Bursts arrive as a Poisson process, on average one every 6 s.
    n_bursts = max(1, rng.poisson(n / fs / 6.0))
    onsets = np.sort(rng.integers(0, n, size=n_bursts))
    # A weak background of motion everywhere, with bursts on top.
    envelope = 0.3 + _burst_envelope(rng, n, fs, onsets)
    carrier = _correlate(_coloured(rng, n, fs, _motion_shape), rho)
    bursts = _unit(envelope * carrier)
    drift = _correlate(_coloured(rng, n, fs, _drift_shape(0.5)), rho)
    steps = _decaying_steps(rng, n, fs, onsets, rho)
    return math.sqrt(0.4) * bursts + math.sqrt(0.4) * drift + math.sqrt(0.2) * steps


def _muscle_artifact(rng: np.random.Generator, n: int, fs: float, rho: float) -> np.ndarray:
    # EMG as recorded by a 0.1-100 Hz ECG front end: most power at 10-50 Hz.
    carrier = _correlate(_coloured(rng, n, fs, _band(10.0, 40.0, order=3)), rho)
    # Contraction strength: log-normal, changing over seconds, shared by both channels.
    envelope = np.exp(0.8 * _coloured(rng, n, fs, _band(None, 0.15, order=2), count=1)[0])
    muscle = _unit(envelope * carrier)
    drift = _correlate(_coloured(rng, n, fs, _drift_shape(0.5)), rho)
    return math.sqrt(1.0 - _MA_DRIFT_SHARE) * muscle + math.sqrt(_MA_DRIFT_SHARE) * drift


_NOISE_MAKERS = {"bw": _baseline_wander, "em": _electrode_motion, "ma": _muscle_artifact}


def synthesize_noise_records(n_samples: int, fs: float = 360.0,
                             seed: int = 0) -> dict[str, np.ndarray]:
    """NSTDB-like noise records "bw", "em", "ma", each (n_samples, 2) float32 (mV).

    Each channel is scaled to the whole-record RMS of the real record.
    """
    _check_arguments(n_samples, fs)
    out = {}
    for index, name in enumerate(NOISE_NAMES):
        rng = _rng(seed, _NOISE_STREAM, index, _SIGNAL_PART)
        noise = _unit(_NOISE_MAKERS[name](rng, int(n_samples), float(fs),
                                          NOISE_CHANNEL_CORRELATION[name]))
        noise *= np.asarray(NOISE_RMS_MV[name])[:, None]
        out[name] = np.ascontiguousarray(noise.T, dtype=np.float32)
    return out
