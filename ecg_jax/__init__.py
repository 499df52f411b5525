"""ecg-jax: multi-seed ECG denoising benchmark in JAX/Flax.

Data flow, one module per step:
  records.py     WFDB records (MIT-BIH Arrhythmia, NSTDB noise), checksums
  synthetic.py   built-in synthetic ECG/noise source for offline use
  windows.py     windows and train/test splits
  noise.py       noise mixing at a target input SNR (pure, jit-able)
  datasets.py    prepared data (clean windows + noise segments), cache, data card
  metrics.py     RMSE, SNR, PRD, ... (jit-able, batch-first)
  baselines.py   FFT and DWT denoisers
  models/        Flax networks and their registry
  train/         multi-seed (member-vmapped) training, sharding, checkpoints
  evaluate.py    restore checkpoints and score every member
  results.py     results.jsonl rows shared by baselines and networks
  tables.py      SNR/RMSE tables (HTML, Markdown, CSV)
  figures.py     matplotlib figures
"""

__version__ = "0.1.0"
