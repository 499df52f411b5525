"""Score the classical baselines on every (noise type, SNR) dataset of a config.

  ECG_JAX_DATA=../shared/data ecg-jax baselines --workdir W
  ecg-jax baselines --workdir W --config default:smoke
  ecg-jax baselines --workdir W --config.baselines.threshold_search=True
  ecg-jax baselines --workdir W --config final        # DWT (universal) + EMD
  ecg-jax baselines --workdir W --config.baselines.methods=fft,dwt,emd

Runs `config.baselines.methods` (FFT, DWT, EMD) with the config's DWT rule
(`baselines.dwt_rule`: the reference's signed maximum, or the final
revision's universal thresholds), on raw or normalised windows
(`baselines.on_normalized`). Writes W/data_card.json and appends one row per
(method, noise type, SNR) to W/results.jsonl (seed null: the baselines are
deterministic), then prints them. Each row records its protocol revision and
the settings it was scored with (threshold; approximation/detail factors; IMF
slice); with threshold_search these are chosen per dataset on its training
windows only. EMD uses every core (ecg_jax/baselines/emd.py). The work is
done by ecg_jax.baselines.run_baselines.
"""

import os
import time

from absl import flags

from ecg_jax.cli import define_config_file
from ecg_jax.errors import ConfigError
from ecg_jax.workdir import check_output_folder

_CONFIG = define_config_file("default", "Config (data and baseline fields): a built-in name[:arg] or a file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder for data_card.json and results.jsonl.", required=True)


def main(argv):
    if len(argv) > 1:
        raise ConfigError(f"unexpected arguments: {' '.join(argv[1:])}")
    check_output_folder(_WORKDIR.value, "--workdir")
    # lazy: the heavy code loads after the flags are parsed, so --help and flag errors are fast
    from ecg_jax.baselines import run_baselines
    from ecg_jax.results import print_rows

    tic = time.perf_counter()
    rows = run_baselines(_CONFIG.value, _WORKDIR.value)
    print_rows(rows)
    source = rows[0]["source"] if rows else "?"
    note = "  (SYNTHETIC data: not PhysioNet)" if source == "synthetic" else ""
    print(f"{len(rows)} rows -> {os.path.join(_WORKDIR.value, 'results.jsonl')} in "
          f"{time.perf_counter() - tic:.1f}s{note}")
