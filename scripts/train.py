"""Train every seed (and dataset) of a config in one compiled program, then evaluate.

The `ecg-jax train` command (its flags and code: ecg_jax/commands/train.py), kept as a script:
`python scripts/train.py ...` is `ecg-jax train ...`. Needs the package installed (pip install -e .).
"""

from _front_door import run_script

if __name__ == "__main__":
    run_script("train")
