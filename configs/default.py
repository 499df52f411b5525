"""The protocol's default config without a network-specific part.

Used by scripts that only need the shared fields (e.g. scripts/prepare_data.py);
`--config=configs/default.py:smoke` shrinks it like every other config.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (configs/ is not a package; config_flags loads files by path)


def get_config(arg: str | None = None):
    tokens = common.parse_arg(arg, ("smoke",))
    config = common.base_config()
    if "smoke" in tokens:
        config = common.smoke_overrides(config)
    return config
