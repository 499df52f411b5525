"""The shipped denoiser (weights/dancer.npz): DANCER trained on every noise type and SNR at once.

Two stages. The default config is the first: the protocol's fixed noisy
windows (below). `configs/denoiser.py:fresh` is the second, run by
`python -m ecg_jax.train.fresh_noise` (fresh noise for every batch, drawn
inside the compiled step): the shipped weights are stage one fine-tuned by it
for 2000 steps (weights/dancer.json says exactly how, with the benchmark).

Stage one:

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
    tokens = common.parse_arg(arg, ("smoke", "fresh"))
    c = common.network_config("dancer", None)
    c.experiment = "denoiser"
    c.noise_types = ("mixed",)
    c.seeds = 1
    c.data.split = "inter_patient"
    c.data.n_windows = 20000
    c.train.epochs = 30
    c.train.lr_decay_epoch = (20,)
    c.train.checkpoint_every = 5
    if "fresh" in tokens:
        c.fresh = fresh_config()
    if "smoke" in tokens:
        c = common.smoke_overrides(c)
        c.noise_types = ("mixed",)
        c.seeds = 1
        c.train.epochs = 2
        if "fresh" in tokens:
            c.fresh.steps, c.fresh.eval_every, c.fresh.val_windows = 20, 10, 256
    return c


def fresh_config():
    """The fresh-noise recipe (ecg_jax/train/fresh_noise.py): new noise for every batch, drawn on the device.

      ecg-jax train --config denoiser:fresh --workdir runs/fresh   # or, the same:
      python -m ecg_jax.train.fresh_noise --config configs/denoiser.py:fresh --workdir runs/fresh \
          [--set fresh.steps=20000] [--set fresh.init_weights=weights/dancer.npz]
    """
    import ml_collections

    f = ml_collections.ConfigDict()
    f.batch_size = 64
    f.window = 256
    f.steps = 6000
    f.eval_every = 250
    f.learning_rate = 1e-3
    f.final_lr_fraction = 0.02      # cosine decay to 2% of the rate
    f.snr_db_range = (-8.0, 12.0)   # uniform per window
    f.amplitude_range = (0.5, 2.0)  # log-uniform gain on clean and noise alike
    f.emb_probability = 0.25        # windows with exactly bw + em + ma (else a random mixture)
    f.lowfreq_weight = 0.0          # extra weight on the error's moving average (baseline wander)
    f.lowfreq_window = 64
    f.mains_probability = 0.0       # windows that also get 50/60 Hz mains with harmonics (0 = the shipped recipe)
    f.dc_step_probability = 0.0     # windows that also get a DC offset plus one step (0 = the shipped recipe)
    f.noise_train_fraction = 0.8    # first 80% of each NSTDB record; the rest is benchmark noise
    f.val_records = ("105", "203", "223", "232")   # held out of the card's train records for model selection
    f.val_windows = 2048
    f.init_weights = ""             # a weights file to start from ("" = random init)
    return f
