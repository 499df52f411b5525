"""The whole benchmark grid of the paper: every network, the ablation, FFT and DWT.

  python scripts/reproduce.py --config configs/paper.py --workdir R
  python scripts/reproduce.py --config configs/paper.py:smoke --workdir /tmp/repro
  python scripts/reproduce.py --config configs/paper.py --workdir R \
      --config.networks=unet,dancer --config.seeds=3 --config.baselines_enabled=False

Fields:
  the protocol fields of configs/common.base_config() (data, noise_types,
  snr_levels, seeds, seed_offset, train, baselines), shared by every experiment;
  networks           experiment ids to run, in table order (a comma string on
                     the command line: --config.networks=unet,ciadnet_base);
  experiments        experiment id -> "network config file[:arg]" in configs/:
                     model and model_kwargs come from that file, every other
                     field from this config; the id names the experiment, its
                     folder and its results' method (ciadnet_channel, ...);
  baselines_enabled  score FFT and DWT (deterministic, seconds).

Variant "smoke": measured 3.5 min wall time (207 s) for the whole reproduction
(9 network experiments + baselines + tables + figures) on the 2-core
development CPU with the PhysioNet copies, while other jobs shared the machine
(8 min under heavier sharing); compiling each network's training program is
most of it (one more epoch adds ~5-20 s per network at these sizes). A rerun
skips everything finished and takes ~7 s. Sizes: the smoke data sizes of
configs/common.smoke_overrides (8 records, 1000 windows: 800 train / 200 test),
2 noise types (emb, bw) x 2 input SNRs (-4 dB for the example figure, 4 dB)
x 2 seeds, 1 epoch.
"""

import ml_collections

from ecg_jax.configs import common

# Experiment id -> network config file (in configs/) and its argument. The id
# is also the method id of the results rows (ecg_jax.train.loop.method_id), so
# CIADNet proper serves both the main table and the last ablation row.
EXPERIMENTS = {
    "unet": "unet.py",
    "dacnn": "dacnn.py",
    "acdae": "acdae.py",
    "ags_unet": "ags_unet.py",
    "ciadnet": "ciadnet.py",
    "dancer": "dancer.py",
    "ciadnet_base": "ciadnet.py:base",
    "ciadnet_channel": "ciadnet.py:channel",
    "ciadnet_spatial": "ciadnet.py:spatial",
}

# The fields every experiment takes from this config rather than from its own
# network config file.
SHARED_FIELDS = ("data", "noise_types", "snr_levels", "seeds", "seed_offset", "train", "baselines")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    tokens = common.parse_arg(arg, ("smoke",))
    base = common.base_config()
    if "smoke" in tokens:
        base = common.smoke_overrides(base)
        base.seeds = 2
        base.noise_types = ("emb", "bw")
        base.snr_levels = (-4, 4)
        base.train.epochs = 1
    c = ml_collections.ConfigDict()
    for name in SHARED_FIELDS:
        c[name] = base[name]
    c.networks = tuple(EXPERIMENTS)
    c.experiments = ml_collections.ConfigDict(EXPERIMENTS)
    c.baselines_enabled = True
    return c
