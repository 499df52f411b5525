"""Prepare the data for a config and write <workdir>/data_card.json.

  python scripts/prepare_data.py --workdir W [--config=configs/default.py[:smoke]]
      [--config.data.data_dir=../shared/data]

Prints the source (loudly when it is the built-in SYNTHETIC one), the sizes,
the achieved input SNR of every dataset, the time taken and whether the
prepared-data cache was hit.
"""

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from ecg_jax.cli import run_main  # noqa: E402
from ecg_jax.datasets import prepare_and_write_data_card  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(REPO_ROOT, "configs", "default.py"), "Experiment config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Folder for data_card.json.", required=True)


def main(argv: list[str]) -> None:
    del argv
    lines, path = prepare_and_write_data_card(_CONFIG.value, _WORKDIR.value)
    for line in lines:
        print(line)
    print(f"data card: {path}")


if __name__ == "__main__":
    app.run(run_main(main))
