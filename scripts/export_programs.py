"""Lower every network's training and evaluation programs for GPUs/TPUs here, with jax.export.

The `ecg-jax export-programs` command (its flags and code: ecg_jax/commands/export_programs.py), kept as a script:
`python scripts/export_programs.py ...` is `ecg-jax export-programs ...`. Needs the package installed (pip install -e .).
"""

from _front_door import run_script

if __name__ == "__main__":
    run_script("export-programs")
