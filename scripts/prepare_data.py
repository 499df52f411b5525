"""Prepare the data for a config and write <workdir>/data_card.json.

  python scripts/prepare_data.py --workdir W [--config=configs/default.py[:smoke]]
      [--config.data.data_dir=../shared/data]

Prints the source (loudly when it is the built-in SYNTHETIC one), the sizes,
the achieved input SNR of every dataset, the time taken and whether the
prepared-data cache was hit.
"""

import os
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from ecg_jax import datasets  # noqa: E402
from ecg_jax.cli import run_main  # noqa: E402
from ecg_jax.config_utils import resolve_config  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(REPO_ROOT, "configs", "default.py"), "Experiment config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Folder for data_card.json.", required=True)

SNR_TOLERANCE_DB = 0.01


def _db(x: float) -> str:
    """4 decimals, without the "-0.0000" that a -1e-8 dB rounding residue would print."""
    return f"{round(x, 4) + 0.0:.4f}"


def summary_lines(card: dict, prepared: datasets.PreparedData, seconds: float) -> list[str]:
    lines = []
    if card["source"] == "synthetic":
        lines += ["=" * 72,
                  "SOURCE: SYNTHETIC data (built-in generator), NOT PhysioNet MIT-BIH.",
                  f"  {card.get('source_note', '')}",
                  "  Results on it are not comparable with published numbers.",
                  "=" * 72]
    else:
        lines.append(f"source: PhysioNet mitdb + nstdb from {card['data_dir']}")
    lines.append(f"split: {card['split']}; windows: {card['n_windows']} of {card['window']} samples "
                 f"(train {card['n_train']}, test {card['n_test']}) from {len(card['records'])} "
                 f"record(s), pool {card['pool_size']}, data_seed {card['data_seed']}")
    lines.append(f"cache: {'hit' if prepared.cache_hit else 'miss (built and saved)'} "
                 f"{prepared.cache_path}")
    lines.append("dataset        target   input SNR train   input SNR test")
    for d in card["datasets"]:
        worst = d["input_snr_max_abs_error_db"]
        flag = "" if worst is not None and worst <= SNR_TOLERANCE_DB else "   <-- off target!"
        lines.append(f"{d['noise_type']:<6} {d['snr_db']:>12g} dB {_db(d['input_snr_train_db']):>14} dB "
                     f"{_db(d['input_snr_test_db']):>12} dB{flag}")
    lines.append(f"time: {seconds:.2f} s")
    return lines


def main(argv: list[str]) -> None:
    del argv
    start = time.perf_counter()
    config = resolve_config(_CONFIG.value)
    prepared = datasets.prepare_data(config)
    card = datasets.data_card(prepared, config)
    path = datasets.write_data_card(card, _WORKDIR.value)
    for line in summary_lines(card, prepared, time.perf_counter() - start):
        print(line)
    print(f"data card: {path}")


if __name__ == "__main__":
    app.run(run_main(main))
