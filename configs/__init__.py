"""The built-in experiment configs, importable as `ecg_jax.configs` (the package links this folder in).

Each `<name>.py` here is an ml_collections config file with `get_config(arg)`;
`--config <name>[:arg]` (e.g. `dancer:smoke`) picks one by name, `--config
PATH[:arg]` any file. `common.py` holds the protocol defaults they share.
"""
