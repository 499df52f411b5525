"""Export a training run as one portable weights file (.npz) plus a JSON model card next to it.

The `ecg-jax export` command (its flags and code: ecg_jax/commands/export.py), kept as a script:
`python scripts/export.py ...` is `ecg-jax export ...`. Needs the package installed (pip install -e .).
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
    run_script("export")
