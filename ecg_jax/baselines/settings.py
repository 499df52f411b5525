"""Per-dataset reference settings: one value per noise type, or one per (noise type, SNR)."""

from __future__ import annotations

from typing import Any, Mapping

from ecg_jax.errors import ConfigError


def per_dataset(table: Mapping[str, Any], noise_type: str, snr_db: float, what: str, hint: str = "") -> Any:
    """`table[noise_type]`, or `table[noise_type][snr]` where the reference chose per SNR level.

    ConfigError naming what the reference has when the dataset is not in the table.
    """
    if noise_type not in table:
        raise ConfigError(f"no reference {what} for noise type {noise_type!r}; known: {', '.join(table)}")
    entry = table[noise_type]
    if not isinstance(entry, Mapping):
        return entry
    snr = float(snr_db)
    if snr not in entry:
        raise ConfigError(f"no reference {what} for {noise_type} at {snr:g} dB (the reference chose "
                          f"{', '.join(f'{s:g}' for s in entry)} dB){hint}")
    return entry[snr]
