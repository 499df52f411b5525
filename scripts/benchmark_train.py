"""Training throughput, measured side by side in one run (member-steps per second).

The `ecg-jax benchmark` command (its flags and code: ecg_jax/commands/benchmark.py), kept as a script:
`python scripts/benchmark_train.py ...` is `ecg-jax benchmark ...`. Needs the package installed (pip install -e .).
"""

from _front_door import run_script

if __name__ == "__main__":
    run_script("benchmark")
