"""The protocol's defaults, shared by every experiment config.

Every field can be overridden from the command line, e.g.
  --config.seeds=3 --config.noise_types=emb --config.snr_levels=-4,0
  --config.data.data_dir=../shared/data --config.train.epochs=5
Comma-separated strings are accepted for list-valued fields.
"""

import ml_collections

# Hyperparameters a sweep may vary: none changes a shape, so one compiled program serves every point.
from ecg_jax.sweep_points import SWEEPABLE

NOISE_TYPES = ("emb", "bw", "ma", "em")
SNR_LEVELS = (-4, -2, 0, 2, 4)


def data_config() -> ml_collections.ConfigDict:
    d = ml_collections.ConfigDict()
    # "auto": PhysioNet files when a data folder is configured (data_dir or
    # $ECG_JAX_DATA), else the built-in synthetic source. "physionet" insists
    # on real data; "synthetic" always uses the built-in source.
    d.source = "auto"
    d.data_dir = ""          # folder holding mitdb/ and nstdb/; "" -> $ECG_JAX_DATA
    d.records = ()           # MIT-BIH record names; () -> all 48
    # Protocol revision (../shared/spec/protocol.md, README "Protocol revisions"):
    # "paper" (default), "first" (the published emb FFT/DWT rows: emb mixed as
    # the mean of separately scaled noises) or "final" (the reference's last
    # revision: its exact draw sequence, configs/final.py). Named in every table.
    d.revision = "paper"
    d.split = "reference"    # "reference" (window-level) or "inter_patient"; "final" needs inter_patient
    # emb mixing: "sum" (bw+em+ma scaled as one noise) or "mean_of_scaled" (each
    # scaled on its own, then averaged); "auto" follows the revision ("first" ->
    # mean_of_scaled, else sum).
    d.emb_mixing = "auto"
    d.data_seed = 42
    d.window = 256
    d.fs = 360
    d.n_windows = 10000
    d.train_fraction = 0.8
    # Training records held out as a validation split (inter-patient: whole records), on which a sweep
    # chooses its point; the test windows are never looked at for that. "auto": none without a sweep,
    # 10% of the training records (at least 1) with one. docs/sweeps.md.
    d.validation_records = "auto"
    d.windows_per_record_divisor = 10  # max(1, len // (window * 10)) windows per record
    d.cache_dir = ""         # "" -> $ECG_JAX_CACHE or ~/.cache/ecg_jax
    # Synthetic source sizes (ignored for PhysioNet data).
    d.synthetic_records = 48
    d.synthetic_samples = 650000
    return d


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.experiment = "unet"
    c.model = "unet"
    c.model_kwargs = ml_collections.ConfigDict()  # e.g. channel_shrink for CIADNet
    c.seeds = 10             # seeds 0..seeds-1 (plus seed_offset)
    c.seed_offset = 0
    c.noise_types = NOISE_TYPES
    c.snr_levels = SNR_LEVELS
    c.data = data_config()

    t = ml_collections.ConfigDict()
    t.epochs = 100
    t.batch_size = 64
    t.learning_rate = 1e-3
    t.weight_decay = 0.0     # PyTorch Adam's (coupled, L2): g + weight_decay x p; the reference uses none
    t.adam_b1 = 0.9
    t.adam_b2 = 0.999
    t.adam_eps = 1e-8
    # lr x lr_decay_factor from epoch lr_decay_epoch on (0-based epoch index).
    # Both may be lists for a piecewise schedule, each factor relative to
    # learning_rate: the final revision's (50, 70) and (0.1, 0.05).
    t.lr_decay_epoch = (40,)
    t.lr_decay_factor = (0.1,)
    # How a member's test score is aggregated: "window" (mean over test
    # windows, the protocol) or "batch_means" (mean of per-batch means over
    # test batches of batch_size, as the final revision's reference scores).
    t.score_aggregation = "window"
    t.member_parallelism = "auto"  # "auto" | "vmap" | "map": members batched inside the step (auto: vmap)
    t.loop = "auto"          # "auto" | "scan" | "host" (auto: scan, one program per epoch; train/program.py)
    t.max_members_per_program = 0  # 0 -> planned: XLA memory analysis on accelerators, 1 per device on CPU
    t.gpu_deterministic = False  # deterministic XLA GPU kernels (bit-exact resume on GPUs; slower)
    # Precision of convolutions and matrix products in the compiled programs: "highest" (float32, the
    # reference's arithmetic), "high" or "default" (TPU: bfloat16 passes; GPU: TF32). README "Accelerators".
    t.precision = "highest"
    # CPU emulation of cheaper hardware arithmetic: "none", or round every convolution/product input to
    # "bfloat16" (a TPU at precision default) or "tf32" (an NVIDIA GPU in TF32) first (train/precision.py).
    t.conv_input_rounding = "none"
    t.checkpoint_every = 10  # epochs
    t.keep_checkpoints = 2
    t.tensorboard = False
    c.train = t

    b = ml_collections.ConfigDict()
    b.fft_threshold = 0.0012
    b.dwt_threshold = 0.074   # db8 wavelet, maximum level (ecg_jax/baselines.py)
    b.threshold_search = False  # option: pick thresholds per dataset on training windows
    b.methods = ("fft", "dwt")  # scored by scripts/run_baselines.py; "emd" too in the final revision
    # "signed_max" (reference: threshold x signed max of each level) or
    # "universal" (final revision: median(|c|)/0.6745 x sqrt(2 ln L) x factor,
    # per-(noise, SNR) factors in ecg_jax/baselines.py)
    b.dwt_rule = "signed_max"
    b.on_normalized = False    # final revision: denoise the normalised window, score de-normalised
    c.baselines = b
    c.sweep = sweep_config()
    return c


def sweep_config() -> ml_collections.ConfigDict:
    """Sweep axes: each a comma-separated list of values ("" = not swept), e.g.
    --config.sweep.train.learning_rate=1e-3,3e-4. A list-valued field's values are "/"-separated
    (--config.sweep.train.lr_decay_epoch=50/70,40/60). Members = datasets x points x seeds; "grid"
    crosses the axes, "zip" pairs equally long ones. docs/sweeps.md."""
    s = ml_collections.ConfigDict()
    s.mode = "grid"
    s.train = ml_collections.ConfigDict({name: "" for name in SWEEPABLE})
    return s


def smoke_overrides(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Shrink a config so that it trains in well under a minute on 2 CPU cores."""
    c.seeds = 3
    c.noise_types = ("emb",)
    c.snr_levels = (0,)
    c.data.records = ("100", "101", "103", "105", "106", "119", "200", "203")
    c.data.n_windows = 1000
    c.data.synthetic_records = 8
    c.data.synthetic_samples = 330000  # 128 windows per record -> pool of 1024
    c.train.epochs = 3
    c.train.checkpoint_every = 1
    return c


def parse_arg(arg: str | None, valid: tuple[str, ...]) -> set[str]:
    """Config-file arguments: `configs/x.py:smoke` or `configs/ciadnet.py:channel,smoke`."""
    tokens = {t.strip() for t in (arg or "").replace("+", ",").split(",") if t.strip()}
    unknown = tokens - set(valid)
    if unknown:
        raise ValueError(f"unknown config argument(s) {sorted(unknown)}; valid: {', '.join(valid)}")
    return tokens


def network_config(model: str, arg: str | None, **model_kwargs) -> ml_collections.ConfigDict:
    """The protocol config for one network of models.md; arg "smoke" shrinks it."""
    tokens = parse_arg(arg, ("smoke",))
    c = base_config()
    c.experiment = model
    c.model = model
    c.model_kwargs = ml_collections.ConfigDict(model_kwargs)
    if "smoke" in tokens:
        c = smoke_overrides(c)
    return c
