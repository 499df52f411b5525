"""Evaluate a training workdir from its checkpoints.

The `ecg-jax evaluate` command (its flags and code: ecg_jax/commands/evaluate.py), kept as a script:
`python scripts/evaluate.py ...` is `ecg-jax evaluate ...`. Needs the package installed (pip install -e .).
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
    run_script("evaluate")
