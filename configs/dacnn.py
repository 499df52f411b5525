"""DACNN under the benchmark protocol: 10 seeds x 4 noise types x 5 SNRs, 100 epochs.

  python scripts/train.py --config configs/dacnn.py --workdir runs/dacnn
  python scripts/train.py --config configs/dacnn.py:smoke --workdir /tmp/dacnn-smoke
"""

from ecg_jax.configs import common


def get_config(arg: str | None = None):
    return common.network_config("dacnn", arg)
