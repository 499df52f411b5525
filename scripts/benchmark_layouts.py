"""Training speed per device layout, measured side by side in one run (member-steps per second).

The `ecg-jax benchmark-layouts` command (its flags and code: ecg_jax/commands/benchmark_layouts.py), kept as a script:
`python scripts/benchmark_layouts.py ...` is `ecg-jax benchmark-layouts ...`. Needs the package installed (pip install -e .).
"""

from _front_door import run_script

if __name__ == "__main__":
    run_script("benchmark-layouts")
