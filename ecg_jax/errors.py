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


def one_line(e: BaseException, typed: bool = True) -> str:
    """An exception as one line of an error message.

    typed (the default): "Type: the first line of its message", or "Type" alone for an empty message:
    what the denoiser says about a file a library could not read or a damaged weights file.
    typed=False: the message alone; a multi-line one (a config file's traceback, ml_collections'
    "did you mean" KeyError, a file that did not load) as "first line: last line", a KeyError's own
    text rather than its repr, "Type" for an empty message: what the command line says about a flag.
    """
    if typed:
        text = str(e).strip()
        return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__
    text = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    if not lines:
        return type(e).__name__
    return lines[0] if len(lines) == 1 else f"{lines[0].rstrip(':')}: {lines[-1]}"
