"""The shipped denoiser (and any --weights) against the filters people use, on held-out records.

  ecg-jax benchmark-denoise                                  # shipped weights, Markdown table
  ecg-jax benchmark-denoise --weights a.npz,b.npz --out bench.json
  ecg-jax benchmark-denoise --records 100 --per_record 1 --noise_types emb --snr_levels 0

Methods: each weights file, NeuroKit2 `ecg_clean` ("neurokit", "biosppy"; optional,
pip install neurokit2) and a 4th-order zero-phase Butterworth 0.5-40 Hz band-pass.
Data: 30 s two-lead stretches of the shipped card's test records with NSTDB
bw/em/ma/emb noise at -4/0/+4 dB (ecg_jax/denoise/benchmark.py says exactly how).
Mains cells: artificial 50/60 Hz mains with harmonics at 0/-6 dB (--mains, --mains_snr_levels; --mains= for
none). R-peak F1 per cell and method (NeuroKit2 ecg_peaks vs the .atr beats, within 150 ms; needs neurokit2).
Needs the PhysioNet folder: --data_dir or $ECG_JAX_DATA.
"""

import sys

from absl import flags

from ecg_jax.errors import ConfigError

_WEIGHTS = flags.DEFINE_list("weights", [], "Weights files (.npz) to compare; default weights/dancer.npz.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Folder holding mitdb/ and nstdb/; default $ECG_JAX_DATA.")
_RECORDS = flags.DEFINE_list("records", [], "MIT-BIH records; default the shipped model card's test_records.")
_PER_RECORD = flags.DEFINE_integer("per_record", 3, "Stretches per record.")
_SECONDS = flags.DEFINE_float("seconds", 30.0, "Stretch length in seconds.")
_NOISE = flags.DEFINE_list("noise_types", ["bw", "em", "ma", "emb"], "Noise types.")
_SNR = flags.DEFINE_list("snr_levels", ["-4", "0", "4"], "Input SNRs in dB.")
_MAINS = flags.DEFINE_list("mains", ["50", "60"], "Mains interference cells, in Hz (50 and/or 60; empty: none).")
_MAINS_SNR = flags.DEFINE_list("mains_snr_levels", ["0", "-6"], "Input SNRs in dB of the mains cells.")
_NO_F1 = flags.DEFINE_bool("no_f1", False, "Skip the R-peak F1 (NeuroKit2 ecg_peaks) scores.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the noise offsets.")
_NO_FILTERS = flags.DEFINE_bool("no_filters", False, "Networks only (no NeuroKit2, no Butterworth).")
_OUT = flags.DEFINE_string("out", None, "Also write the result (table rows, per-stretch gains) as JSON here.")


def main(argv):
    if len(argv) > 1:
        raise ConfigError(f"unexpected arguments: {' '.join(argv[1:])}")
    # lazy: the heavy code loads after the flags are parsed, so --help and flag errors are fast
    from ecg_jax.data.records import missing_data_error, resolve_data_dir
    from ecg_jax.denoise import benchmark as bench

    data_dir = resolve_data_dir(_DATA_DIR.value)
    if data_dir is None:
        raise missing_data_error("the benchmark needs the real MIT-BIH and NSTDB records")
    try:
        snrs = [float(s) for s in _SNR.value]
        mains_snrs = [float(s) for s in _MAINS_SNR.value]
    except ValueError:
        raise ConfigError(f"--snr_levels and --mains_snr_levels must be numbers in dB, got "
                          f"{','.join(_SNR.value)} and {','.join(_MAINS_SNR.value)}") from None
    bad = [f for f in _MAINS.value if f not in ("50", "60")]
    if bad:
        raise ConfigError(f"--mains takes 50 and/or 60 (Hz), got {','.join(bad)}")
    progress = (lambda msg: print(msg, file=sys.stderr, flush=True)) if sys.stderr.isatty() else None
    result = bench.benchmark(_WEIGHTS.value, data_dir, _RECORDS.value, _PER_RECORD.value, _SECONDS.value,
                             _NOISE.value, snrs, _SEED.value, filters=not _NO_FILTERS.value, progress=progress,
                             mains_types=[f"mains{f}" for f in _MAINS.value], mains_snr_levels=mains_snrs,
                             f1=not _NO_F1.value)
    print(bench.report(result))
    if _OUT.value:
        bench.write_json(result, _OUT.value)
        print(f"wrote {_OUT.value}")
