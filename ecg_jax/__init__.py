"""ecg-jax: multi-seed ECG denoising benchmark in JAX/Flax.

Data flow, one folder or module per stage (README.md, "Layout"):
  data/          records -> windows (per protocol revision) -> noise recipes -> prepared data, cache, card
  models/        Flax networks and their registry
  train/         all members (seeds x datasets) in one sharded, donated program; checkpoints
  evaluation.py  the compiled evaluation program; scoring from restored checkpoints
  baselines/     FFT, DWT (signed-max and universal thresholds), EMD
  metrics.py     RMSE, SNR, PRD, ... (jit-able, batch-first)
  results.py     results.jsonl rows shared by baselines and networks
  report/        SNR/RMSE tables (HTML, Markdown, CSV) and figures
  reproduce.py   the whole benchmark in one call
  denoise/       weights -> denoise any recording (formats, resampling, overlap-add)
"""

__version__ = "0.1.0"
