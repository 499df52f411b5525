"""`python -m ecg_jax COMMAND [flags]`: the same as the `ecg-jax` command (ecg_jax/commands)."""

from ecg_jax.commands import main

if __name__ == "__main__":
    main(prog="python -m ecg_jax")
