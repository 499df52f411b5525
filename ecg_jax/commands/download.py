"""Download the PhysioNet data the benchmark needs into DIR/{mitdb,nstdb}.

  ecg-jax download --out DIR

What is fetched, how it is verified, and the offline behaviour: ecg_jax/data/download.py.
"""

from absl import flags

from ecg_jax.data.download import download_all

_OUT = flags.DEFINE_string("out", None, "Folder to create mitdb/ and nstdb/ in.", required=True)
_TIMEOUT = flags.DEFINE_float("timeout", 5.0, "Seconds to wait for the connectivity probe.")
_FORCE = flags.DEFINE_bool("force", False, "Download again even if a verified copy exists.")


def main(argv: list[str]) -> None:
    del argv
    download_all(_OUT.value, force=_FORCE.value, timeout=_TIMEOUT.value)
