"""One run per workdir, and a workdir that can take the run's files: checked before any work.

`WorkdirLock` is an exclusive `fcntl` lock on `<workdir>/.lock`, holding the
owner's pid and host. The kernel drops the lock when its process dies (kill -9
included), so a lock left by a killed run is simply taken over; a live run
holding it makes a second one stop at once, naming that process.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket

from ecg_jax.errors import DataError, EcgJaxError

LOCK_NAME = ".lock"


class WorkdirBusy(EcgJaxError):
    pass


class WorkdirNotWritable(EcgJaxError):
    pass


class WorkdirLock:
    """`with WorkdirLock(workdir): ...` holds the workdir for this process."""

    def __init__(self, workdir: str):
        self.path = os.path.join(workdir, LOCK_NAME)
        self._fd: int | None = None

    def __enter__(self) -> "WorkdirLock":
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise WorkdirBusy(f"{os.path.dirname(self.path)} is in use by {holder}; wait for it to finish "
                              "or use another --workdir") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"process {os.getpid()} on {socket.gethostname()}\n".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


# Room kept free beyond the estimate of what a run still writes: the estimate counts parameters and
# Adam moments only (not orbax's metadata, metrics, results, examples), and other programs share the disk.
DISK_MARGIN_FRACTION = 0.05   # of the run's whole checkpoint estimate
DISK_MARGIN_BYTES = 2 * 2**20


def disk_margin(total_bytes: int) -> int:
    return int(DISK_MARGIN_FRACTION * total_bytes) + DISK_MARGIN_BYTES


def bytes_under(folder: str, skip: tuple[str, ...] = ()) -> int:
    """Bytes of the files under `folder` (0 if it does not exist), leaving out the subfolders named in `skip`."""
    total = 0
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in skip]
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:   # removed meanwhile
                pass
    return total


def check_writable(workdir: str, needed_bytes: int = 0, written_bytes: int = 0, flag: str = "--workdir") -> None:
    """Stop before any work when the workdir cannot take the run's files.

    Creates the folder if needed, writes and removes a probe file, and compares
    the free space with what the run still has to write: `needed_bytes` (an
    estimate of everything the run keeps on disk at its peak) less
    `written_bytes` (what of it is there already, e.g. a resumed run's
    checkpoints), plus `disk_margin(needed_bytes)`. `flag` names the option to change in the message
    (every command with an output folder calls this before any work: `check_output_folder`).
    """
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise WorkdirNotWritable(f"cannot write to {workdir}: it is a file, not a folder; choose another {flag}")
    try:
        os.makedirs(workdir, exist_ok=True)
        probe = os.path.join(workdir, f".write-probe-{os.getpid()}")
        with open(probe, "wb") as f:
            f.write(b"\0" * 4096)
            f.flush()
            os.fsync(f.fileno())
        os.remove(probe)
    except OSError as e:
        raise WorkdirNotWritable(f"cannot write to {workdir}: {e.strerror or e}; "
                                 f"choose a writable {flag}") from None
    free = shutil.disk_usage(workdir).free
    if not needed_bytes:
        return
    to_write = max(0, needed_bytes - written_bytes)
    margin = disk_margin(needed_bytes)
    if free < to_write + margin:
        written = f", {written_bytes / 2**20:.1f} MiB of {needed_bytes / 2**20:.1f} MiB already there" \
            if written_bytes else ""
        raise WorkdirNotWritable(f"{workdir} has {free / 2**20:.1f} MiB free, the run still writes about "
                                 f"{to_write / 2**20:.1f} MiB (checkpoints{written}) plus a margin of "
                                 f"{margin / 2**20:.1f} MiB; free some space or choose another {flag}")


def check_output_folder(folder: str, flag: str) -> None:
    """The check `train` and `evaluate` make of their workdir, for any command's output folder: created if
    missing, a regular file, a read-only folder or an uncreatable parent refused in one line naming
    `flag`, before any work."""
    check_writable(folder or ".", flag=flag)


def check_output_file(path: str, flag: str) -> None:
    """`check_output_folder` for the folder an output file goes to."""
    check_writable(os.path.dirname(os.path.abspath(path)), flag=flag)


def pin_data_source(config, workdir: str | None = None):
    """The data a run trains on, fixed in its config: `data.source` "auto" becomes the
    source actually used and `data.data_dir` its absolute folder.

    A workdir's config.json then names its data, so a resume or an evaluation
    run from another folder (or without $ECG_JAX_DATA) uses the same data or
    stops; it never silently scores on the synthetic source. A workdir whose
    config.json still says "auto" is pinned from its data_card.json.
    """

    # lazy: ecg_jax.data pulls in JAX, wfdb and pandas; the workdir lock and checks need none of them
    from ecg_jax.config_utils import read_json_file
    from ecg_jax.data import DATA_CARD_NAME, resolve_source

    if config.data.source == "auto" and workdir is not None:
        card_path = os.path.join(workdir, DATA_CARD_NAME)
        if os.path.exists(card_path):
            card = read_json_file(card_path)
            config.data.source = card["source"]
            if card["source"] == "physionet" and not config.data.data_dir:
                config.data.data_dir = card.get("data_dir") or ""
    source, data_dir = resolve_source(config.data)
    config.data.source = source
    config.data.data_dir = data_dir or ""
    return config


def require_data(config, workdir: str) -> None:
    """One line naming the missing folder when a workdir's PhysioNet data is not here."""
    if config.data.source == "physionet" and not os.path.isdir(config.data.data_dir):
        raise DataError(f"{workdir} was trained on PhysioNet data in {config.data.data_dir}, which does not "
                        "exist here; point at a copy with --config.data.data_dir=DIR (scripts/train.py) or "
                        "--data_dir DIR (scripts/evaluate.py)")


@contextlib.contextmanager
def claimed(workdir: str, needed_bytes: int = 0, write: bool = True, written_bytes: int = 0):
    """Hold `workdir` for this run: process 0 checks it can be written and locks it.

    In a multi-process run every process learns the outcome (one broadcast), so
    a busy or unwritable workdir stops all of them with one line instead of
    leaving the others waiting in their first collective.
    """
    import jax
    import numpy as np
    from jax.experimental import multihost_utils

    lock, error = None, None
    if write and jax.process_index() == 0:
        try:
            check_writable(workdir, needed_bytes, written_bytes)
            lock = WorkdirLock(workdir).__enter__()
        except EcgJaxError as e:
            error = e
    if jax.process_count() > 1:
        failed = int(multihost_utils.broadcast_one_to_all(np.int32(error is not None)))
        if failed and error is None:
            error = EcgJaxError(f"process 0 could not claim {workdir} (its error line says why); stopping")
    if error is not None:
        raise error
    try:
        yield
    finally:
        if lock is not None:
            lock.__exit__(None, None, None)
