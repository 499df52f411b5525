"""The shipped denoiser (weights/dancer.npz): DANCER trained on every noise type and SNR at once.

  python scripts/train.py --config configs/denoiser.py --workdir runs/denoiser \
      --config.data.data_dir=../shared/data
  python scripts/export.py --workdir runs/denoiser --output weights/dancer.npz

Data: the real MIT-BIH + NSTDB records, an inter-patient split (records
shuffled with data_seed 42 and split 80/20 by record, so the model card's
test records are never seen in training), 20000 non-overlapping windows
(16000 train, 4000 test); noise type "mixed": window i gets noise type and SNR
number i mod 20 of {emb, bw, ma, em} x {-4, -2, 0, 2, 4} dB, so one network
learns all 20 datasets. Normalisation: the per-channel mean and std of the
mixed training inputs, fixed constants in mV, so denoising needs no
knowledge of a recording's noise type or SNR.

Training: 30 epochs (chosen to fit the 2-core development CPU, ~25 min;
an accelerator makes 100 epochs a matter of minutes), Adam 1e-3, x0.1 from
epoch 20, batch 64, one seed.
"""

from ecg_jax.configs import common


def get_config(arg: str | None = None):
    tokens = common.parse_arg(arg, ("smoke",))
    c = common.network_config("dancer", None)
    c.experiment = "denoiser"
    c.noise_types = ("mixed",)
    c.seeds = 1
    c.data.split = "inter_patient"
    c.data.n_windows = 20000
    c.train.epochs = 30
    c.train.lr_decay_epoch = (20,)
    c.train.checkpoint_every = 5
    if "smoke" in tokens:
        c = common.smoke_overrides(c)
        c.noise_types = ("mixed",)
        c.seeds = 1
        c.train.epochs = 2
    return c
