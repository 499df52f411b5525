"""Download the PhysioNet data the benchmark needs into DIR/{mitdb,nstdb}.

The `ecg-jax download` command (its flags and code: ecg_jax/commands/download.py), kept as a script:
`python scripts/download_data.py ...` is `ecg-jax download ...`. Needs the package installed (pip install -e .).
"""

from _front_door import run_script

if __name__ == "__main__":
    run_script("download")
