"""Time data preparation for the whole 20-dataset grid, cold and warm.

The `ecg-jax benchmark-data` command (its flags and code: ecg_jax/commands/benchmark_data.py), kept as a script:
`python scripts/benchmark_data.py ...` is `ecg-jax benchmark-data ...`. Needs the package installed (pip install -e .).
"""

from _front_door import run_script

if __name__ == "__main__":
    run_script("benchmark-data")
