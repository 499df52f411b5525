"""Export a training run as one portable weights file (.npz) plus a JSON model card next to it.

The `ecg-jax export` command (its flags and code: ecg_jax/commands/export.py), kept as a script:
`python scripts/export.py ...` is `ecg-jax export ...`. Needs the package installed (pip install -e .).
"""

from _front_door import run_script

if __name__ == "__main__":
    run_script("export")
