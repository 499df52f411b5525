"""CIADNet and its ablation variants under the benchmark protocol.

The two switches of models.md select the variant (default: both on, CIADNet
proper). Arguments, combinable with commas:
  configs/ciadnet.py            CIADNet (channel + spatial shrink)
  configs/ciadnet.py:base       ablation baseline, neither switch ("Baseline (U-Net)")
  configs/ciadnet.py:channel    + Channel Shrink only
  configs/ciadnet.py:spatial    + Spatial Shrink only
  configs/ciadnet.py:channel,smoke   ... any of the above with the smoke sizes
The switches are also plain fields: --config.model_kwargs.channel_shrink=False.
"""

from ecg_jax.configs import common

VARIANTS = {"full": (True, True), "base": (False, False), "channel": (True, False), "spatial": (False, True)}


def get_config(arg: str | None = None):
    tokens = common.parse_arg(arg, tuple(VARIANTS) + ("smoke",))
    chosen = [t for t in tokens if t in VARIANTS] or ["full"]
    if len(chosen) > 1:
        raise ValueError(f"choose one CIADNet variant, got {sorted(chosen)}")
    channel, spatial = VARIANTS[chosen[0]]
    config = common.network_config("ciadnet", "smoke" if "smoke" in tokens else None,
                                   channel_shrink=channel, spatial_shrink=spatial)
    if chosen[0] != "full":
        config.experiment = f"ciadnet_{chosen[0]}"
    return config
