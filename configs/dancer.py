"""DANCER under the benchmark protocol: 10 seeds x 4 noise types x 5 SNRs, 100 epochs.

  python scripts/train.py --config configs/dancer.py --workdir runs/dancer
  python scripts/train.py --config configs/dancer.py:smoke --workdir /tmp/dancer-smoke
"""

from ecg_jax.configs import common


def get_config(arg: str | None = None):
    return common.network_config("dancer", arg)
