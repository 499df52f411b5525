"""Prepare the data for a config; write <workdir>/data_card.json and/or export the arrays.

The `ecg-jax prepare` command (its flags and code: ecg_jax/commands/prepare.py), kept as a script:
`python scripts/prepare_data.py ...` is `ecg-jax prepare ...`. Needs the package installed (pip install -e .).
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
    run_script("prepare")
