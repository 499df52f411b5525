"""Denoise an ECG recording of any sampling rate, length and format with a trained network.

The `ecg-jax denoise` command (its flags and code: ecg_jax/commands/denoise.py), kept as a script:
`python scripts/denoise.py ...` is `ecg-jax denoise ...`. Needs the package installed (pip install -e .).
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
    run_script("denoise")
