"""Denoise an ECG recording of any sampling rate, length and format with a trained network.

  ecg-jax denoise holter.hea --output clean.hea                  # WFDB in, WFDB out (same rate)
  ecg-jax denoise ecg.csv --fs 500 --output clean.csv --plot ecg.png
  ecg-jax denoise ecg.npy --fs 250 --output clean.npy --weights my.npz
  ecg-jax denoise rec.edf --output clean.npy --workdir runs/dancer --member all
  ecg-jax denoise rec.hea --output clean.hea --workdir runs/grid --dataset emb@0   # one dataset's seeds

Inputs: .csv (one column per lead, optional header; needs --fs), .npy
(samples x leads; needs --fs), .hea (WFDB), .edf. Outputs: .csv, .npy, .hea.
Values in mV (WFDB/EDF units are read from the file). Default weights: the
shipped DANCER (weights/dancer.npz, installed with the package). Bad input:
one line on stderr, exit status 2.
"""

import math
import sys

from absl import flags

from ecg_jax.errors import DenoiseInputError
from ecg_jax.workdir import check_output_file

_OUTPUT = flags.DEFINE_string("output", None, "Output file: .csv, .npy or .hea (WFDB).", required=True)
# A string flag, parsed in main: absl's own float parsing answers "--fs abc" with two lines and exit 1.
_FS = flags.DEFINE_string("fs", None, "Sampling rate in Hz (required for .csv and .npy inputs; for .hea and "
                          ".edf the file's own rate, which --fs may only repeat).")
_WEIGHTS = flags.DEFINE_string("weights", None, "Weights file (.npz from `ecg-jax export`); "
                               "default the shipped weights/dancer.npz.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Use a training workdir's checkpoints instead of a weights file.")
_MEMBER = flags.DEFINE_string("member", "all", "Member index, or 'all' to average every member (seed ensemble).")
_DATASET = flags.DEFINE_string("dataset", None, "NOISE@SNR (e.g. emb@0): only the members trained on that dataset; "
                               "needed with --member all when the run's members span several datasets.")
_PLOT = flags.DEFINE_string("plot", None, "PNG of the first 10 s: input vs denoised, per lead.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing output file (never the input).")
_ALLOW_CHANGED = flags.DEFINE_bool(
    "allow_changed_model_source", False, "Denoise with your own network (PATH.py:Class) although its file "
    "changed since the weights were exported (or the workdir trained).")
_UNITS = flags.DEFINE_string("units", None, "Units of a .csv/.npy input's values: uV, mV (the default) or V; the "
                             "output is written in the same units. .hea and .edf files state their own.")


def parse_fs(text):
    """--fs as a positive, finite number of Hz (None when not given); else one line."""
    if text is None:
        return None
    try:
        fs = float(text)
    except ValueError:
        raise DenoiseInputError(f"--fs must be a sampling rate in Hz (a positive number), got {text!r}") from None
    if not (math.isfinite(fs) and fs > 0):
        raise DenoiseInputError(f"--fs must be a sampling rate in Hz (a positive number), got {text!r}")
    return fs


def main(argv):
    if len(argv) != 2:
        raise DenoiseInputError(f"give exactly one input file: {argv[0]} INPUT --output OUTPUT [--fs HZ]")
    if _WEIGHTS.value and _WORKDIR.value:
        raise DenoiseInputError("give either --weights or --workdir, not both")
    fs = parse_fs(_FS.value)
    if _OUTPUT.value:   # a folder that cannot take the output: one line now, before the recording is read
        check_output_file(_OUTPUT.value, "--output")
    # lazy: the heavy code loads after the flags are parsed, so --help and flag errors are fast
    from ecg_jax.denoise import denoise_file

    summary = denoise_file(argv[1], _OUTPUT.value, fs=fs, weights=_WEIGHTS.value, workdir=_WORKDIR.value,
                           member=_MEMBER.value, plot=_PLOT.value, overwrite=_OVERWRITE.value,
                           progress=sys.stderr.isatty(), dataset=_DATASET.value, units=_UNITS.value,
                           allow_changed_model_source=_ALLOW_CHANGED.value)
    print(f"denoised {summary['seconds']:.1f} s x {summary['leads']} lead(s) at {summary['fs']:g} Hz "
          f"-> {summary['output']} ({summary['wall_s']:.1f} s)")
