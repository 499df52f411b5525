"""One command for the whole benchmark: baselines, every network, tables and figures.

The `ecg-jax reproduce` command (its flags and code: ecg_jax/commands/reproduce.py), kept as a script:
`python scripts/reproduce.py ...` is `ecg-jax reproduce ...`. Needs the package installed (pip install -e .).
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
    run_script("reproduce")
