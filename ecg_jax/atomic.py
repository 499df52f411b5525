"""Atomic file writes: a temporary file next to the final name, then os.replace.

A reader never sees a half-written file, and a crash leaves the old file (or
none) in place; a full disk is one line naming the folder and the file
(`interrupts.DiskFullError`). Used by the data cache, the data export, weights
files, model cards and denoised outputs.
"""

from __future__ import annotations

import os
import tempfile


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


def write_text_atomic(path: str, text: str) -> None:
    """Write `text` to `path` atomically (the temporary file is removed if writing fails; a full
    disk is one line naming the file)."""
    with _disk_full_names(path):
        tmp = temp_beside(path, os.path.basename(path) + ".")
        try:
            with open(tmp, "w") as f:
                f.write(text)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise


def save_npz_atomic(path: str, arrays, overwrite: bool = True) -> None:
    """np.savez `arrays` to `path` atomically. With overwrite=False a file that appeared at
    `path` while writing is left alone (FileExistsError): nothing is silently rewritten."""
    import numpy as np

    with _disk_full_names(path):
        tmp = temp_beside(path, os.path.basename(path) + ".")
        try:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
            if not overwrite and os.path.exists(path):
                raise FileExistsError(f"{path} appeared while writing; refusing to overwrite it")
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise


def _disk_full_names(path: str):
    from ecg_jax.interrupts import disk_full_as_one_line

    return disk_full_as_one_line(os.path.dirname(os.path.abspath(path)), os.path.basename(path))
