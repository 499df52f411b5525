"""Score the classical baselines on every (noise type, SNR) dataset of a config.

The `ecg-jax baselines` command (its flags and code: ecg_jax/commands/baselines.py), kept as a script:
`python scripts/run_baselines.py ...` is `ecg-jax baselines ...`. Needs the package installed (pip install -e .).
"""

from _front_door import run_script

if __name__ == "__main__":
    run_script("baselines")
