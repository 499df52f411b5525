"""Print one row per network: parameters (vs models.md), FLOPs, output shape, forward time.

The `ecg-jax summary` command (its flags and code: ecg_jax/commands/summary.py), kept as a script:
`python scripts/model_summary.py ...` is `ecg-jax summary ...`. Needs the package installed (pip install -e .).
"""

from _front_door import run_script

if __name__ == "__main__":
    run_script("summary")
