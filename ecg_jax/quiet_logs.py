"""Silence, at its source, what orbax and tensorstore print that a user cannot act on.

Kept apart from train/checkpoints.py (which only records when a read or write
was abandoned) so the entry points can install it without importing orbax.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

_quieted = False
_abandoned_reads = False   # set once a restore or a save failed with reads or writes still pending


def _from_orbax(tb) -> bool:
    """Whether a traceback passes through orbax's code."""
    marker = f"{os.sep}orbax{os.sep}"
    while tb is not None:
        if marker in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False


def quiet_orbax() -> None:
    """Silence what orbax and tensorstore print that a user cannot act on, at its source.

    Orbax logs every manager creation, save and restore through absl. After a
    failed read (a damaged checkpoint, which `restore` reports in one line),
    its pending reads die later on a closed event loop: asyncio logs "exception
    was never retrieved", Python prints unraisable exceptions and "coroutine
    was never awaited" warnings, each with a page of tensorstore spec. All of
    those, and only those, are dropped; other libraries' logs, warnings and
    unraisable errors are kept.

    It changes process-global logging and `sys.unraisablehook`, so the entry
    points call it (`cli.run_main`), never library code.
    """
    global _quieted
    if _quieted:
        return
    _quieted = True
    orbax_path = f"{os.sep}orbax{os.sep}"

    class DropOrbaxRecords(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            if orbax_path in record.pathname and record.levelno < logging.CRITICAL:
                return False
            if not record.exc_info:
                return True
            if _from_orbax(record.exc_info[2]):
                return False
            # A read that orbax abandoned when another read of the same restore failed can
            # finish later, in tensorstore's C++, into a future nobody awaits: asyncio then
            # logs "Future exception was never retrieved" with an exception that was never
            # raised in Python (no traceback). Only after such a failed restore (or save).
            return not (_abandoned_reads and record.name == "asyncio" and record.exc_info[1] is not None
                        and record.exc_info[2] is None)

    logging.getLogger("absl").addFilter(DropOrbaxRecords())
    logging.getLogger("asyncio").addFilter(DropOrbaxRecords())
    # Reads abandoned on a damaged checkpoint, and writes abandoned when the disk fills, leave orbax coroutines
    # unawaited.
    warnings.filterwarnings("ignore", message=r"coroutine '(_read_array_index_and_device_put|async_serialize_from_host"
                            r"\.<locals>\.write_fragment)' was never awaited", category=RuntimeWarning)
    previous_hook = sys.unraisablehook

    def hook(unraisable) -> None:
        exc = unraisable.exc_value
        if ((isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed")
                or _from_orbax(unraisable.exc_traceback)):
            return
        previous_hook(unraisable)

    sys.unraisablehook = hook


def note_abandoned_io() -> None:
    """A restore or save failed with reads or writes still pending: their late failures are orbax's."""
    global _abandoned_reads
    _abandoned_reads = True
