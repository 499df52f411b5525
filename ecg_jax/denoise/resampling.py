"""Polyphase resampling between a recording's rate and the model's 360 Hz, block by block.

`scipy.signal.resample_poly` filters with a fixed FIR filter whose taps depend
only on the (up, down) ratio, so resampling a slice of a long signal gives the
same interior samples as resampling the whole signal, provided that

  * the slice starts on the global output grid (its first input index is a
    multiple of `down`, so its first output is a whole global output index), and
  * the samples kept are further than the filter's half length from the slice
    ends (scipy zero-pads outside the slice).

`Ratio` holds the reduced (up, down) pair and those two margins; the block
engine in `core.py` uses them to stream recordings of any length.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from fractions import Fraction

import numpy as np
from scipy.signal import firwin, resample_poly

from ecg_jax.errors import DenoiseInputError

MODEL_FS = 360
# The sampling rates a recording may have (Hz), checked before anything is read or built: an ECG
# below 50 Hz has lost its QRS complexes, and the filter and the resampled signal grow with the
# ratio to 360 Hz (--fs 0.001 would upsample 360000-fold: gigabytes for a few samples).
MIN_FS, MAX_FS = 50.0, 10_000.0
# fs is a float in file headers (e.g. 359.9999 after a rounding); ratios are
# kept to small integers so the polyphase filter stays short.
MAX_DENOMINATOR = 1000
# Anti-aliasing filter: scipy's default design (Kaiser beta 5, half length
# 10 x max(up, down)) has ~0.2% passband ripple, visible as a 1e-3 error after
# a 360 -> 500 -> 360 Hz round trip. Beta 10 over 30 x max(up, down) taps per
# side brings that below 1e-5 for about 3x the (small) filtering cost.
KAISER_BETA = 10.0
HALF_LENGTH_PER_RATE = 30


def check_fs(fs: float, source: str | None = None) -> None:
    """Refuse a sampling rate outside MIN_FS..MAX_FS in one line: given with --fs (`source` None), or
    stated by the file `source` itself."""
    if MIN_FS <= float(fs) <= MAX_FS:
        return
    accepted = f"the sampling rates ecg-jax can resample to {MODEL_FS} Hz are {MIN_FS:g}..{MAX_FS:g} Hz"
    if source is None:
        raise DenoiseInputError(f"--fs {float(fs):g} Hz is out of range: {accepted}; give the recording's rate "
                                f"in Hz (e.g. --fs 500)")
    raise DenoiseInputError(f"{source}: its sampling rate, {float(fs):g} Hz, is out of range: {accepted}; "
                            f"resample the recording into that range first")


@dataclasses.dataclass(frozen=True)
class Ratio:
    """model_fs / fs as a reduced fraction up / down."""
    up: int
    down: int

    @classmethod
    def between(cls, fs: float, target: float = MODEL_FS) -> "Ratio":
        fraction = (Fraction(target) / Fraction(fs)).limit_denominator(MAX_DENOMINATOR)
        return cls(fraction.numerator, fraction.denominator)

    @property
    def identity(self) -> bool:
        return self.up == self.down

    @property
    def inverse(self) -> "Ratio":
        return Ratio(self.down, self.up)

    @property
    def half_length(self) -> int:
        """Filter taps on each side of the centre, at the upsampled rate."""
        return HALF_LENGTH_PER_RATE * max(self.up, self.down)

    @property
    def margin(self) -> int:
        """Input samples on each side of a slice that scipy's zero padding can affect."""
        return math.ceil(self.half_length / self.up) + 2

    def output_start(self, input_start: int) -> int:
        """Global output index of a slice's first output; the slice must start on the grid."""
        assert input_start % self.down == 0, (input_start, self.down)
        return input_start * self.up // self.down

    def input_span(self, out_start: int, out_stop: int) -> tuple[int, int]:
        """Input slice [a, b) (a on the grid) whose resampling gives outputs [out_start, out_stop) exactly."""
        a = math.floor(out_start * self.down / self.up) - self.margin
        a -= a % self.down   # floor to a multiple of down (Python's % is non-negative)
        b = math.ceil(out_stop * self.down / self.up) + self.margin + 1
        return a, b

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Resample along axis 0 (float64)."""
        if self.identity:
            return np.asarray(x, np.float64)
        return resample_poly(np.asarray(x, np.float64), self.up, self.down, axis=0,
                             window=_lowpass(self.up, self.down, self.half_length))


@functools.lru_cache(maxsize=16)
def _lowpass(up: int, down: int, half_length: int) -> np.ndarray:
    """The FIR anti-aliasing filter, cut off at the lower of the two Nyquist rates."""
    return firwin(2 * half_length + 1, 1.0 / max(up, down), window=("kaiser", KAISER_BETA))


def resample_span(read, ratio: Ratio, out_start: int, out_stop: int) -> np.ndarray:
    """Outputs [out_start, out_stop) (global indices at the new rate) of resampling the signal that
    `read(a, b)` returns (input samples [a, b), any integers: the caller extends the signal
    beyond its ends), equal to the same outputs of resampling the whole signal."""
    if ratio.identity:
        return np.asarray(read(out_start, out_stop), np.float64)
    a, b = ratio.input_span(out_start, out_stop)
    y = ratio.apply(read(a, b))
    first = ratio.output_start(a)
    return y[out_start - first:out_stop - first]
