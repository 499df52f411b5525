"""Overlapping windows and their seamless recombination (overlap-add with a cross-fade).

The network sees fixed 256-sample windows. A recording is cut into windows on
a global grid (window w covers samples [w*hop, w*hop + 256)), each window's
output is weighted by a periodic Hann window and the weighted outputs are
summed. Shifted copies of a periodic Hann window at hop 256/2 (or 256/4, /8)
sum to a constant, so every output sample is a smooth blend of the windows
that cover it, with no seam at window borders; dividing by the summed weights
makes the blend exact (an identity network gives its input back).
"""

from __future__ import annotations

import numpy as np


def crossfade_weights(length: int) -> np.ndarray:
    """Periodic Hann window: 0.5 - 0.5 cos(2 pi t / length), t = 0..length-1."""
    t = np.arange(length)
    return 0.5 - 0.5 * np.cos(2 * np.pi * t / length)


def windows_covering(start: int, stop: int, length: int, hop: int) -> tuple[int, int]:
    """Windows [w0, w1) of the global grid that touch samples [start, stop)."""
    w0 = (start - length) // hop + 1   # first window whose end is past `start`
    w1 = -(-stop // hop)               # first window that starts at or after `stop`
    return w0, w1


def cut_windows(x: np.ndarray, length: int, hop: int) -> np.ndarray:
    """(n, C) -> (W, length, C): windows at offsets 0, hop, 2*hop, ... (a view where possible)."""
    view = np.lib.stride_tricks.sliding_window_view(x, length, axis=0)[::hop]   # (W, C, length)
    return np.swapaxes(view, 1, 2)


def overlap_add(outputs: np.ndarray, hop: int, weights: np.ndarray) -> np.ndarray:
    """(W, length, C) window outputs at offsets k*hop -> ((W-1)*hop + length, C), cross-faded.

    Samples covered by fewer windows (the first and last hop) are divided by
    their own, smaller weight sums, so they stay exact too where the weights
    are non-zero.
    """
    n_windows, length, channels = outputs.shape
    if length % hop:
        raise ValueError(f"hop {hop} must divide the window length {length}")
    total = np.zeros(((n_windows - 1) * hop + length, channels))
    norm = np.zeros(((n_windows - 1) * hop + length, 1))
    weighted = outputs * weights[None, :, None]
    for s in range(length // hop):
        # Piece s of every window lands on a contiguous run of the output.
        part = slice(s * hop, (s + 1) * hop)
        total[s * hop:s * hop + n_windows * hop] += weighted[:, part].reshape(-1, channels)
        norm[s * hop:s * hop + n_windows * hop] += np.tile(weights[part], n_windows)[:, None]
    return total / np.where(norm > 0, norm, 1.0)
