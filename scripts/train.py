"""Train every seed (and dataset) of a config in one compiled program, then evaluate.

The `ecg-jax train` command (its flags and code: ecg_jax/commands/train.py), kept as a script:
`python scripts/train.py ...` is `ecg-jax train ...`. Needs the package installed (pip install -e .).
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
    run_script("train")
