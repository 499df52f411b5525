"""The reference's final revision (protocol.md, "final"): its exact data draws, U-Net [17, 17, 7, 7], 80 epochs.

  python scripts/prepare_data.py --config configs/final.py --export runs/final-data.npz
  python scripts/train.py --config configs/final.py --workdir runs/final-unet
  python scripts/run_baselines.py --config configs/final.py --workdir runs/final-baselines
  python scripts/train.py --config configs/final.py:smoke --workdir /tmp/final-smoke

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

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (configs/ is not a package; config_flags loads files by path)


def get_config(arg: str | None = None):
    tokens = common.parse_arg(arg, ("smoke",))
    c = common.network_config("unet", None, kernels=(17, 17, 7, 7))
    c.experiment = "unet_final"
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
    if "smoke" in tokens:
        c = common.smoke_overrides(c)
        c.seeds = 1
        c.train.epochs = 2
        c.train.lr_decay_epoch, c.train.lr_decay_factor = (1,), (0.1,)
    return c
