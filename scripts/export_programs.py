"""Lower every network's training and evaluation programs for GPUs/TPUs here, with jax.export.

The `ecg-jax export-programs` command (its flags and code: ecg_jax/commands/export_programs.py), kept as a
script: `python scripts/export_programs.py ...` is `ecg-jax export-programs ...`. Needs the package installed
(pip install -e .).
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
    run_script("export-programs")
