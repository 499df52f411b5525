"""Atomic file writes: a temporary file next to the final name, then os.replace.

A reader never sees a half-written file, and a crash leaves the old file (or
none) in place; a full disk is one line naming the folder and the file
(`interrupts.DiskFullError`). Every replace-style write of ecg-jax goes through
here: `write_text_atomic` and `save_npz_atomic` for whole files (configs, cards,
the data cache and export, weights files, benchmark results), `atomic_path` for
writers that stream into the temporary file themselves (results.jsonl, the
epochs kept of metrics.jsonl, the denoiser's plot, the report's figures),
`temp_beside` for the denoiser's outputs (`denoise.signals.Writer`, which
renames a WFDB record's two files together). Appends (metrics.jsonl, results
rows) are not replaced and do not come here.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Iterator

from ecg_jax.interrupts import disk_full_as_one_line


def temp_beside(final_path: str, prefix: str = ".tmp-") -> str:
    """Create an empty temporary file in the final file's folder; returns its path.

    mkstemp makes it owner-only (0600); it gets the mode an ordinary new file
    would have (0666 minus the umask), since os.replace keeps the mode.
    """
    directory = os.path.dirname(os.path.abspath(final_path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=os.path.splitext(final_path)[1], dir=directory)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return tmp


@contextlib.contextmanager
def atomic_path(final_path: str, prefix: str | None = None) -> Iterator[str]:
    """Yield a temporary path beside `final_path` (`temp_beside`) to write to; on success it is
    os.replace'd onto `final_path`, on any failure (an exception, Ctrl-C) removed.

    For writers that stream into a file themselves; the body may also refuse the
    replace by raising. A full disk is not translated here: wrap the block in
    `interrupts.disk_full_as_one_line` with what the caller is writing.
    """
    tmp = temp_beside(final_path, os.path.basename(final_path) + ".tmp-" if prefix is None else prefix)
    try:
        yield tmp
        os.replace(tmp, final_path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_text_atomic(path: str, text: str) -> None:
    """Write `text` to `path` atomically (the temporary file is removed if writing fails; a full
    disk is one line naming the file)."""
    with _disk_full_names(path), atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)


def save_npz_atomic(path: str, arrays, overwrite: bool = True) -> None:
    """np.savez `arrays` to `path` atomically. With overwrite=False a file that appeared at
    `path` while writing is left alone (FileExistsError): nothing is silently rewritten."""
    import numpy as np

    with _disk_full_names(path), atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        if not overwrite and os.path.exists(path):
            raise FileExistsError(f"{path} appeared while writing; refusing to overwrite it")


def _disk_full_names(path: str):
    return disk_full_as_one_line(os.path.dirname(os.path.abspath(path)), os.path.basename(path))
