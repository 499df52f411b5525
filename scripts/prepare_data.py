"""Prepare the data for a config; write <workdir>/data_card.json and/or export the arrays.

The `ecg-jax prepare` command (its flags and code: ecg_jax/commands/prepare.py), kept as a script:
`python scripts/prepare_data.py ...` is `ecg-jax prepare ...`. Needs the package installed (pip install -e .).
"""

from _front_door import run_script

if __name__ == "__main__":
    run_script("prepare")
