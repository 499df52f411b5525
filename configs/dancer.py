"""DANCER under the benchmark protocol: 10 seeds x 4 noise types x 5 SNRs, 100 epochs.

  python scripts/train.py --config configs/dancer.py --workdir runs/dancer
  python scripts/train.py --config configs/dancer.py:smoke --workdir /tmp/dancer-smoke
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (configs/ is not a package; config_flags loads files by path)


def get_config(arg: str | None = None):
    return common.network_config("dancer", arg)
