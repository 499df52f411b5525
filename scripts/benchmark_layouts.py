"""Training speed per device layout, measured side by side in one run (member-steps per second).

The `ecg-jax benchmark-layouts` command (its flags and code: ecg_jax/commands/benchmark_layouts.py), kept as a
script: `python scripts/benchmark_layouts.py ...` is `ecg-jax benchmark-layouts ...`. Needs the package installed
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
    run_script("benchmark-layouts")
