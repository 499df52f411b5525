"""Merge results.jsonl files into the benchmark tables and figures.

The `ecg-jax tables` command (its flags and code: ecg_jax/commands/tables.py), kept as a script:
`python scripts/make_tables.py ...` is `ecg-jax tables ...`. Needs the package installed (pip install -e .).
"""

from _front_door import run_script

if __name__ == "__main__":
    run_script("tables")
