"""Download the PhysioNet data the benchmark needs into DIR/{mitdb,nstdb}.

  python scripts/download_data.py --out DIR

What is fetched, how it is verified, and the offline behaviour: ecg_jax/download.py.
"""

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from absl import app, flags  # noqa: E402

from ecg_jax.cli import run_main  # noqa: E402
from ecg_jax.data.download import download_all  # noqa: E402

_OUT = flags.DEFINE_string("out", None, "Folder to create mitdb/ and nstdb/ in.", required=True)
_TIMEOUT = flags.DEFINE_float("timeout", 5.0, "Seconds to wait for the connectivity probe.")
_FORCE = flags.DEFINE_bool("force", False, "Download again even if a verified copy exists.")


def main(argv: list[str]) -> None:
    del argv
    download_all(_OUT.value, force=_FORCE.value, timeout=_TIMEOUT.value)


if __name__ == "__main__":
    app.run(run_main(main))
