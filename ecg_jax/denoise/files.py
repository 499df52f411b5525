"""File in, file out: what `scripts/denoise.py` runs."""

from __future__ import annotations

import os
import time

import numpy as np

from ecg_jax.denoise.core import load_denoiser
from ecg_jax.denoise.signals import Recording, check_output_path, open_recording, open_writer
from ecg_jax.errors import DenoiseInputError

PLOT_SECONDS = 10.0


def denoise_file(input_path: str, output_path: str, fs: float | None = None, weights: str | None = None,
                 workdir: str | None = None, member: str | int = "all", plot: str | None = None,
                 overwrite: bool = False, progress: bool = True) -> dict:
    """Denoise `input_path` into `output_path` (formats by extension; see `signals.py`).

    Returns a summary: samples, leads, fs, seconds of signal, wall time.
    Everything that can be checked is checked before the network is loaded.
    """
    check_output_path(output_path, overwrite)
    if plot is not None and os.path.splitext(plot)[1].lower() != ".png":
        raise DenoiseInputError(f"--plot must name a .png file, got {plot}")
    recording = open_recording(input_path, fs)
    denoiser = load_denoiser(weights, workdir=workdir, member=member)
    tic = time.perf_counter()
    shown = max(1, min(recording.n_samples, int(PLOT_SECONDS * recording.fs)))
    first: list[np.ndarray] = []
    with open_writer(output_path, recording, recording.n_samples) as writer:
        for block in denoiser.blocks(recording, progress=progress):
            writer.write(block)
            if sum(len(b) for b in first) < shown:
                first.append(block[:shown])
    if plot:
        plot_comparison(plot, recording, np.concatenate(first)[:shown])
    return {"input": input_path, "output": output_path, "samples": recording.n_samples, "leads": recording.n_leads,
            "fs": recording.fs, "seconds": recording.n_samples / recording.fs,
            "wall_s": time.perf_counter() - tic}


def plot_comparison(path: str, recording: Recording, denoised: np.ndarray) -> None:
    """PNG of the first seconds: input (grey) and denoised (colour), one panel per lead."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(denoised)
    t = np.arange(n) / recording.fs
    x = recording.read(0, n)
    names = recording.lead_names or [f"lead {i}" for i in range(recording.n_leads)]
    fig, axes = plt.subplots(recording.n_leads, 1, figsize=(12, 2.2 * recording.n_leads + 0.6), sharex=True,
                             squeeze=False)
    for lead, ax in enumerate(axes[:, 0]):
        ax.plot(t, x[:, lead], color="0.6", lw=0.8, label="input")
        ax.plot(t, denoised[:, lead], color="C0", lw=1.0, label="denoised")
        ax.set_ylabel(f"{names[lead]} (mV)")
    axes[0, 0].legend(loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel("time (s)")
    fig.suptitle(os.path.basename(recording.path), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
