"""Per-member compiled memory of every network's training program, and XLA's cost of one member-step.

The `ecg-jax benchmark-memory` command (its flags and code: ecg_jax/commands/benchmark_memory.py), kept as a
script: `python scripts/benchmark_memory.py ...` is `ecg-jax benchmark-memory ...`. Needs the package installed
(pip install -e .).
"""

import sys

try:
    from ecg_jax.commands import run_script
except ModuleNotFoundError as e:
    if e.name != "ecg_jax":
        raise
    print("error: the ecg_jax package is not installed; from the repository root: pip install -e .", file=sys.stderr)
    sys.exit(2)

if __name__ == "__main__":
    run_script("benchmark-memory")
