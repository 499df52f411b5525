"""Per-member compiled memory of every network's training program, and XLA's cost of one member-step.

The `ecg-jax benchmark-memory` command (its flags and code: ecg_jax/commands/benchmark_memory.py), kept as a script:
`python scripts/benchmark_memory.py ...` is `ecg-jax benchmark-memory ...`. Needs the package installed (pip install -e .).
"""

from _front_door import run_script

if __name__ == "__main__":
    run_script("benchmark-memory")
