"""File in, file out: what `scripts/denoise.py` runs."""

from __future__ import annotations

import contextlib
import os
import time

import numpy as np

from ecg_jax.atomic import atomic_path
from ecg_jax.denoise.core import check_amplitude, load_denoiser
from ecg_jax.denoise.signals import Recording, check_output_path, check_space, open_recording, open_writer
from ecg_jax.denoise.signals import output_path as output_path_of
from ecg_jax.errors import DenoiseInputError, one_line
from ecg_jax.interrupts import disk_full_as_one_line

PLOT_SECONDS = 10.0


def denoise_file(input_path: str, output_path: str, fs: float | None = None, weights: str | None = None,
                 workdir: str | None = None, member: str | int = "all", plot: str | None = None,
                 overwrite: bool = False, progress: bool = True, dataset: str | None = None,
                 units: str | None = None, allow_changed_model_source: bool = False) -> dict:
    """Denoise `input_path` into `output_path` (formats by extension; see `signals.py`).

    Returns a summary: samples, leads, fs, seconds of signal, wall time.
    Everything that can be checked is checked before the network is loaded: the
    output and the plot paths (an existing file is refused unless `overwrite`; the
    plot's folder must exist), the input (its rate: `resampling.check_fs`), the
    free space for a .npy/.hea output (`signals.check_space`), the weights. The
    plot is rendered to a temporary file before the output is committed and
    renamed after it, so a failure (a full disk, Ctrl-C) leaves neither
    half-written. The output may
    not be the input (`check_not_input`), and the input's amplitude must be
    plausible for ECG in mV (`core.check_amplitude`; `units` for .csv/.npy).
    """
    check_not_input(input_path, output_path)
    output_path = check_output_path(output_path, overwrite)
    if plot is not None:
        check_plot_path(plot, overwrite)   # a .png: never an input
    recording = open_recording(input_path, fs, units)
    check_space(output_path, recording.n_samples, recording.n_leads)   # a .npy/.hea's size is known
    check_amplitude(recording)
    denoiser = load_denoiser(weights, workdir=workdir, member=member, dataset=dataset,
                             allow_changed_model_source=allow_changed_model_source)
    tic = time.perf_counter()
    shown = max(1, min(recording.n_samples, int(PLOT_SECONDS * recording.fs)))
    first: list[np.ndarray] = []
    with contextlib.ExitStack() as plot_file:   # the plot's temporary file, renamed after the output's commit
        with disk_full_as_one_line(os.path.dirname(os.path.abspath(output_path)), os.path.basename(output_path)), \
                open_writer(output_path, recording, recording.n_samples) as writer:
            for block in denoiser.blocks(recording, progress=progress):
                writer.write(block)
                if sum(len(b) for b in first) < shown:
                    first.append(block[:shown])
            if plot:
                try:
                    plot_tmp = plot_file.enter_context(atomic_path(plot, ".plot-"))
                    plot_comparison(plot_tmp, recording, np.concatenate(first)[:shown])
                except OSError as e:
                    raise DenoiseInputError(f"cannot write the plot {plot}: {one_line(e)}") from None
    return {"input": input_path, "output": output_path, "samples": recording.n_samples, "leads": recording.n_leads,
            "fs": recording.fs, "seconds": recording.n_samples / recording.fs,
            "wall_s": time.perf_counter() - tic}


def check_not_input(input_path: str, output_path: str) -> None:
    """Refuse an output that is the input: the same file after resolving links and `..`, or the same
    WFDB record (x.hea in, x.hea out, which would rewrite x.dat too). --overwrite does not change this."""
    def files_of(path: str) -> list[str]:
        path = output_path_of(path)
        stem, ext = os.path.splitext(os.path.realpath(path))
        return [stem + ".hea", stem + ".dat"] if ext.lower() == ".hea" else [os.path.realpath(path)]

    inputs, outputs = files_of(input_path), files_of(output_path)
    same = set(inputs) & set(outputs)
    if not same:
        same = {o for o in outputs for i in inputs
                if os.path.exists(o) and os.path.exists(i) and os.path.samefile(o, i)}
    if same:
        raise DenoiseInputError(f"{output_path} would replace the input {input_path} ({sorted(same)[0]}); write the "
                                "denoised copy to another file (--overwrite does not allow this)")


def check_plot_path(path: str, overwrite: bool = False) -> None:
    """Refuse a plot path that is not a .png, whose folder does not exist, or that exists (unless overwrite)."""
    if os.path.splitext(path)[1].lower() != ".png":
        raise DenoiseInputError(f"--plot must name a .png file, got {path}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise DenoiseInputError(f"--plot {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DenoiseInputError(f"--plot {path}: the folder {folder} is not writable")
    if os.path.isdir(path):
        raise DenoiseInputError(f"--plot {path} is a folder; choose a file name")
    if os.path.exists(path) and not overwrite:
        raise DenoiseInputError(f"{path} exists; refusing to overwrite it (use --overwrite)")


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
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
