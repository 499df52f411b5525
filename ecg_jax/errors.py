"""Exceptions that carry one clear, user-facing message.

Scripts catch `EcgJaxError`, print its message on one line and exit non-zero,
so bad input never ends in a traceback or a half-written workdir.
"""


class EcgJaxError(Exception):
    """Base class for errors caused by user input (data, config, checkpoints)."""


class DataError(EcgJaxError):
    """Missing, truncated, corrupt or unexpected data files."""


class ConfigError(EcgJaxError):
    """An invalid configuration value (unknown model, noise type, SNR, ...)."""


class CheckpointError(EcgJaxError):
    """A checkpoint that is missing or does not match the config."""


class DenoiseInputError(EcgJaxError):
    """A recording that cannot be denoised: missing, unreadable, no sampling rate, flat, too short, all NaN."""


class OutputExistsError(EcgJaxError, FileExistsError):
    """An output file that exists already: ecg-jax never silently rewrites one."""
