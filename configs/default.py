"""The protocol's default config without a network-specific part.

Used by scripts that only need the shared fields (e.g. scripts/prepare_data.py);
`--config=configs/default.py:smoke` shrinks it like every other config.
"""

from ecg_jax.configs import common


def get_config(arg: str | None = None):
    tokens = common.parse_arg(arg, ("smoke",))
    config = common.base_config()
    if "smoke" in tokens:
        config = common.smoke_overrides(config)
    return config
