"""Denoise your own ECG: a trained network on recordings of any rate, length, lead count and format.

    from ecg_jax.denoise import load_denoiser
    d = load_denoiser()            # weights/dancer.npz; or load_denoiser("my.npz"), load_denoiser(workdir="runs/d")
    y = d(x, fs=500)               # x: (samples,) or (samples, leads) in mV -> same shape

Modules: `core` (the Denoiser and its block engine), `resampling`, `overlap`
(windows and cross-fade), `signals` (file readers/writers), `weights`
(portable .npz weights), `runs` (members of a training workdir), `export`
(workdir -> weights file + model card), `files` (file in, file out: the CLI).
"""

from ecg_jax.denoise.core import DEFAULT_WEIGHTS, Denoiser, MissingWeightsError, load_denoiser
from ecg_jax.denoise.files import denoise_file
from ecg_jax.denoise.weights import WeightsError, load_weights, save_weights

__all__ = ["DEFAULT_WEIGHTS", "Denoiser", "MissingWeightsError", "WeightsError", "load_denoiser", "load_weights",
           "save_weights", "export_workdir", "denoise_file"]


def export_workdir(*args, **kwargs):
    """See `ecg_jax.denoise.export.export_workdir` (imported on use: it needs ml_collections, and the
    training code to restore the workdir)."""
    from ecg_jax.denoise.export import export_workdir as export

    return export(*args, **kwargs)
