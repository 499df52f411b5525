"""Artificial artefacts that NSTDB lacks: mains (power-line) interference, DC offsets and steps.

Both are plain numpy, drawn from a `numpy.random.Generator`, so the same
generator state gives the same samples. The denoise benchmark
(ecg_jax/denoise/benchmark.py) mixes them into its mains cells and the
fresh-noise recipe (ecg_jax/train/fresh_noise.py) keeps a bank of them on the
device; this module sits on the data floor so that both can import it.

Mains interference of nominal frequency f0 (50 or 60 Hz):

  frequency  f(t) = f0 + offset + wander(t): a constant offset U(-d/2, d/2) and
             a slow sinusoidal wander of amplitude d/2 (period 5-30 s), d =
             `drift_hz` (a few tenths of a Hz), so |f - f0| <= d;
  harmonics  k = 1, 2, ... with relative amplitudes `harmonics` (decaying; each
             jittered by U(0.7, 1.3)), each with a random phase per lead;
             harmonics at or above the Nyquist frequency are left out (a
             recorder's anti-alias filter removes them), e.g. at 360 Hz 50 Hz
             keeps 50, 100, 150 and 60 Hz keeps 60, 120;
  amplitude  per lead a gain U(0.5, 1.5) times a slow envelope 1 + depth sin(...)
             (0.05-0.3 Hz), depth = `amplitude_depth`;
  phase      per lead a slow phase wobble of up to `phase_wobble` radians
             (0.02-0.2 Hz) on top of the shared frequency path;
  scale      the whole (n, leads) array scaled to `rms` (both leads together,
             the protocol's SNR rule).

DC offsets and steps: per lead a constant offset N(0, 1) plus `steps` steps at
uniform positions with heights N(0, 1), scaled to `rms` when given.
"""

from __future__ import annotations

import numpy as np

MAINS_FREQUENCIES = (50.0, 60.0)
HARMONIC_AMPLITUDES = (1.0, 0.3, 0.15, 0.08, 0.04)   # fundamental, 2nd, 3rd, 4th, 5th (relative)
DRIFT_HZ = 0.3
AMPLITUDE_DEPTH = 0.3
PHASE_WOBBLE = 0.5


def mains_harmonics(frequency: float, fs: float, harmonics=HARMONIC_AMPLITUDES,
                    drift_hz: float = DRIFT_HZ) -> list[int]:
    """The harmonic numbers k kept: those whose highest frequency k (f0 + drift) stays under fs / 2."""
    return [k for k in range(1, len(harmonics) + 1) if k * (frequency + drift_hz) < fs / 2.0]


def mains_noise(rng: np.random.Generator, n: int, fs: float, frequency: float = 50.0, channels: int = 2,
                rms: float = 1.0, harmonics=HARMONIC_AMPLITUDES, drift_hz: float = DRIFT_HZ,
                amplitude_depth: float = AMPLITUDE_DEPTH, phase_wobble: float = PHASE_WOBBLE) -> np.ndarray:
    """(n, channels) float64 mains interference at `frequency` Hz with harmonics, RMS `rms` (module doc)."""
    if n < 1 or channels < 1 or fs <= 0 or frequency <= 0:
        raise ValueError(f"mains_noise needs n, channels >= 1 and fs, frequency > 0; got {n}, {channels}, "
                         f"{fs}, {frequency}")
    kept = mains_harmonics(frequency, fs, harmonics, drift_hz)
    if not kept:
        raise ValueError(f"{frequency} Hz mains is above the Nyquist frequency of {fs} Hz")
    t = np.arange(n) / fs
    offset = rng.uniform(-drift_hz / 2, drift_hz / 2)
    period = rng.uniform(5.0, 30.0)
    inst = frequency + offset + (drift_hz / 2) * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
    phase = 2 * np.pi * np.concatenate([[0.0], np.cumsum(inst[:-1]) / fs])   # the shared fundamental's phase
    out = np.zeros((n, channels))
    for c in range(channels):
        gain = rng.uniform(0.5, 1.5)
        envelope = 1.0 + amplitude_depth * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t + rng.uniform(0, 2 * np.pi))
        wobble = phase_wobble * np.sin(2 * np.pi * rng.uniform(0.02, 0.2) * t + rng.uniform(0, 2 * np.pi))
        for k in kept:
            amp = harmonics[k - 1] * rng.uniform(0.7, 1.3)
            out[:, c] += amp * np.sin(k * (phase + wobble) + rng.uniform(0, 2 * np.pi))
        out[:, c] *= gain * envelope
    return out * (rms / np.sqrt(np.mean(out ** 2)))


def dc_steps(rng: np.random.Generator, n: int, channels: int = 2, steps: int = 1,
             rms: float | None = None) -> np.ndarray:
    """(n, channels) float64: per lead an offset N(0, 1) plus `steps` steps N(0, 1) at uniform positions."""
    if n < 1 or channels < 1 or steps < 0:
        raise ValueError(f"dc_steps needs n, channels >= 1 and steps >= 0; got {n}, {channels}, {steps}")
    out = np.broadcast_to(rng.normal(size=(1, channels)), (n, channels)).copy()
    idx = np.arange(n)[:, None]
    for _ in range(steps):
        at = rng.integers(0, n, size=channels)
        out += rng.normal(size=channels) * (idx >= at[None, :])
    if rms is not None:
        out *= rms / np.sqrt(np.mean(out ** 2))
    return out
