"""The shipped denoiser (and any --weights) against the filters people use, on held-out records.

The `ecg-jax benchmark-denoise` command (its flags and code: ecg_jax/commands/benchmark_denoise.py), kept as a
script: `python scripts/benchmark_denoise.py ...` is `ecg-jax benchmark-denoise ...`. Needs the package
installed (pip install -e .).
"""

from _front_door import run_script

if __name__ == "__main__":
    run_script("benchmark-denoise")
