"""One command for the whole benchmark: baselines, every network, tables and figures.

  ECG_JAX_DATA=../shared/data python scripts/reproduce.py --config configs/paper.py --workdir R
  ECG_JAX_DATA=../shared/data python scripts/reproduce.py --config configs/paper.py:smoke --workdir /tmp/repro
  python scripts/reproduce.py --config configs/paper.py --workdir R --config.networks=unet,dancer
  # several processes (each with its own devices), e.g. two on one machine:
  python scripts/reproduce.py ... --coordinator_address=127.0.0.1:9876 --num_processes=2 --process_id=0 &
  python scripts/reproduce.py ... --coordinator_address=127.0.0.1:9876 --num_processes=2 --process_id=1

Stages, outputs and resumption: ecg_jax/reproduce.py.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from ecg_jax.cli import define_config_file, define_distributed_flags, run_main  # noqa: E402
from ecg_jax.errors import ConfigError  # noqa: E402
from ecg_jax.reproduce import CONFIGS_DIR  # noqa: E402

_CONFIG = define_config_file(os.path.join(CONFIGS_DIR, "paper.py"),
                                          "Paper config (configs/paper.py[:smoke]).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output root: baselines/, one folder per experiment, tables/.",
                               required=True)
define_distributed_flags()


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise ConfigError(f"unexpected arguments: {' '.join(argv[1:])}")
    from ecg_jax.reproduce import reproduce

    paths = reproduce(_CONFIG.value, _WORKDIR.value)
    if not paths:  # not process 0 of a multi-process run
        return
    with open(paths["markdown"]) as f:
        print(f.read(), end="")
    with open(paths["timings"]) as f:
        timed = json.load(f)
    print("\nWall time per stage (s):")
    for name, seconds in timed["seconds"].items():
        print(f"  {name:<18} {seconds:>8.1f}")
    note = "  (SYNTHETIC data: not PhysioNet)" if timed["source"] == "synthetic" else ""
    print(f"Data source: {timed['source']}{note}. Tables and figures in {os.path.dirname(paths['markdown'])}")


if __name__ == "__main__":
    app.run(run_main(main, distributed=True))
