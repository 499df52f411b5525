"""Denoise an ECG recording of any sampling rate, length and format with a trained network.

The `ecg-jax denoise` command (its flags and code: ecg_jax/commands/denoise.py), kept as a script:
`python scripts/denoise.py ...` is `ecg-jax denoise ...`. Needs the package installed (pip install -e .).
"""

from _front_door import run_script

if __name__ == "__main__":
    run_script("denoise")
