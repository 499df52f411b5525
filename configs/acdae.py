"""ACDAE under the benchmark protocol: 10 seeds x 4 noise types x 5 SNRs, 100 epochs.

  python scripts/train.py --config configs/acdae.py --workdir runs/acdae
  python scripts/train.py --config configs/acdae.py:smoke --workdir /tmp/acdae-smoke
"""

from ecg_jax.configs import common


def get_config(arg: str | None = None):
    return common.network_config("acdae", arg)
