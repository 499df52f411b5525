"""Temporary files next to their final name, for writes that end in an atomic os.replace."""

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
