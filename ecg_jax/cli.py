"""Helpers shared by the command-line scripts in scripts/."""

from __future__ import annotations

import sys
from typing import Callable

from ecg_jax.errors import EcgJaxError


def run_main(main: Callable[[list[str]], None]) -> Callable[[list[str]], None]:
    """Wrap an absl `main` so user errors print one line and exit with status 2."""

    def wrapped(argv: list[str]) -> None:
        try:
            main(argv)
        except EcgJaxError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)

    return wrapped
