"""What every `scripts/<name>.py` wrapper shares: the installed front door, or one line saying how to get it.

Python puts a script's own folder first on the module search path, so the
wrappers import this module by name; the package itself is never added to
that path by hand: it must be installed.
"""

import sys

try:
    from ecg_jax.commands import run_script  # noqa: F401 -- what the wrappers import from here
except ModuleNotFoundError as e:
    if e.name != "ecg_jax":
        raise
    print("error: the ecg_jax package is not installed; from the repository root: pip install -e .", file=sys.stderr)
    sys.exit(2)
