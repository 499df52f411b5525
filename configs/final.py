"""The reference's final revision (protocol.md, "final"): its exact data draws, U-Net [17, 17, 7, 7], 80 epochs.

  python scripts/prepare_data.py --config configs/final.py --export runs/final-data.npz
  python scripts/train.py --config configs/final.py --workdir runs/final-unet
  python scripts/run_baselines.py --config configs/final.py --workdir runs/final-baselines
  python scripts/train.py --config configs/final.py:smoke --workdir /tmp/final-smoke
  python scripts/train.py --config configs/final.py:drsn --workdir runs/final-drsn   # any name of NETWORKS
  python scripts/reproduce.py --config configs/final.py:all --workdir runs/final      # the whole final README
  python scripts/reproduce.py --config configs/final.py:all,smoke --workdir /tmp/final-all

Data: Python `random` + NumPy's legacy generator seeded with data_seed (42),
an inter-patient split by record (38 train / 10 test records), 8000 + 2000
non-overlapping windows, noise segments drawn anew for every noise type and
SNR (ecg_jax/final_revision.py). Training: Adam 1e-3, x0.1 from epoch 50,
x0.05 from epoch 70, 80 epochs, batch 64, one seed (42) per cell as the
reference trains; scores as the reference aggregates them (mean of per-batch
means over test batches of 64; `--config.train.score_aggregation=window` for
the per-window mean). Baselines: DWT with universal thresholds and EMD, on
the normalised window.
"""

import ml_collections

from ecg_jax.configs import common

# The networks of the reference's final README (models.md, "Final revision
# networks"): the main comparison, then DANCE's component and ablation variants.
# `unet` is the final U-Net, kernels (17, 17, 7, 7); `dacnn_final` the final DACNN
# (stride-1 layout of models.md, ecg_jax.models.dacnn.DACNNFinal).
MAIN_NETWORKS = ("unet", "drsn", "dacnn_final", "acdae_final", "ralenet", "dance_final")
VARIANTS = ("dance_final_se", "dance_final_cbam", "dance_final_eca", "dance_final_atnc", "dance_final_arem")
NETWORKS = MAIN_NETWORKS + VARIANTS
# The variants are published at emb only (the "components" and "ablation" tables).
VARIANT_NOISE_TYPES = "emb"
FINAL_UNET_KERNELS = (17, 17, 7, 7)


def get_config(arg: str | None = None):
    tokens = common.parse_arg(arg, ("smoke", "all") + NETWORKS)
    networks = [t for t in tokens if t in NETWORKS]
    if len(networks) > 1 or (networks and "all" in tokens):
        raise ValueError(f"name one network or 'all', got {', '.join(sorted(tokens - {'smoke'}))}")
    if "all" in tokens:
        return _benchmark_config("smoke" in tokens)
    return _network_config(networks[0] if networks else "unet", "smoke" in tokens)


def _protocol(c):
    """The final revision's data, schedule and scoring, on any network or benchmark config."""
    c.data.revision = "final"
    c.data.split = "inter_patient"
    c.seeds = 1
    c.seed_offset = 42
    t = c.train
    t.epochs = 80
    t.lr_decay_epoch = (50, 70)
    t.lr_decay_factor = (0.1, 0.05)
    t.score_aggregation = "batch_means"
    b = c.baselines
    b.methods = ("dwt", "emd")
    b.dwt_rule = "universal"
    b.on_normalized = True
    return c


def _smoke(c):
    c = common.smoke_overrides(c)
    c.seeds = 1
    c.train.epochs = 2
    c.train.lr_decay_epoch, c.train.lr_decay_factor = (1,), (0.1,)
    return c


def _network_config(name: str, smoke: bool):
    kwargs = {"kernels": FINAL_UNET_KERNELS} if name == "unet" else {}
    c = _protocol(common.network_config(name, None, **kwargs))
    c.experiment = "unet_final" if name == "unet" else name
    return _smoke(c) if smoke else c


def _benchmark_config(smoke: bool):
    """`final.py:all`: DWT, EMD and every final network on 4 noise types x 5 SNRs, the
    variants at emb x 5 SNRs (scripts/reproduce.py; the fields as in configs/paper.py)."""
    base = _protocol(common.base_config())
    if smoke:
        base = _smoke(base)
        base.noise_types = ("emb", "bw")
        base.snr_levels = (-4, 4)
        base.train.epochs = 1
        base.train.lr_decay_epoch, base.train.lr_decay_factor = (1,), (0.1,)
    c = ml_collections.ConfigDict()
    for name in ("data", "noise_types", "snr_levels", "seeds", "seed_offset", "train", "baselines"):
        c[name] = base[name]
    c.networks = NETWORKS
    c.experiments = ml_collections.ConfigDict({n: f"final.py:{n}" for n in NETWORKS})
    c.experiment_noise_types = ml_collections.ConfigDict({n: VARIANT_NOISE_TYPES for n in VARIANTS})
    c.baselines_enabled = True
    return c
