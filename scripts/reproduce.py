"""One command for the whole benchmark: baselines, every network, tables and figures.

The `ecg-jax reproduce` command (its flags and code: ecg_jax/commands/reproduce.py), kept as a script:
`python scripts/reproduce.py ...` is `ecg-jax reproduce ...`. Needs the package installed (pip install -e .).
"""

from _front_door import run_script

if __name__ == "__main__":
    run_script("reproduce")
