"""Evaluate a training workdir from its checkpoints.

The `ecg-jax evaluate` command (its flags and code: ecg_jax/commands/evaluate.py), kept as a script:
`python scripts/evaluate.py ...` is `ecg-jax evaluate ...`. Needs the package installed (pip install -e .).
"""

from _front_door import run_script

if __name__ == "__main__":
    run_script("evaluate")
