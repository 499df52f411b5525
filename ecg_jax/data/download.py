"""Download the PhysioNet databases the benchmark needs (mitdb, nstdb) into a folder.

    download_all(out)   # creates out/mitdb and out/nstdb, verified against SHA256SUMS.txt

Fetches all 48 MIT-BIH Arrhythmia records (`mitdb`) and the three noise
records bw, em, ma of the Noise Stress Test database (`nstdb`), plus each
database's SHA256SUMS.txt, with wfdb.dl_database. Files land in out/.partial
first and are checked against the checksums; only a complete, verified
database folder is renamed into place, so an interrupted download never looks
like data. Without internet it fails within seconds (a short connectivity
probe runs first) with a DataError that says how to copy the data by hand.
Used by scripts/download_data.py.
"""

from __future__ import annotations

import os
import shutil
import threading
import urllib.error
import urllib.request

from ecg_jax.config_utils import RAW_NOISE_TYPES
from ecg_jax.data import records
from ecg_jax.errors import DataError

PHYSIONET_URL = "https://physionet.org/files/mitdb/"
# (database, records, annotators): mitdb with its beat annotations; only the
# three noise records of nstdb (the rest are pre-mixed test records).
DATABASES = ((records.MITDB, list(records.MITDB_RECORDS), "all"),
             (records.NSTDB, list(RAW_NOISE_TYPES), None))


def manual_copy_hint(out: str) -> str:
    return (f"To install the data by hand, copy PhysioNet's mitdb 1.0.0 (all 48 records, .hea/.dat) "
            f"and nstdb 1.0.0 (bw, em, ma .hea/.dat) folders with their SHA256SUMS.txt into "
            f"{out}/mitdb and {out}/nstdb (e.g. from a machine with internet: "
            f"`python scripts/download_data.py --out DIR`, then copy DIR), and set "
            f"ECG_JAX_DATA={out} or --config.data.data_dir={out}")


def check_connectivity(out: str, url: str = PHYSIONET_URL, timeout: float = 5.0) -> None:
    """DataError unless PhysioNet answers an HTTP request within `timeout` seconds.

    Any HTTP answer counts (even an error status): the point is to fail fast
    offline instead of letting wfdb hang. The request runs in a daemon thread
    joined with the timeout, because socket timeouts do not bound DNS
    resolution, which can hang far longer.
    """
    outcome: dict = {}

    def probe() -> None:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
                pass
            outcome["ok"] = True
        except urllib.error.HTTPError:
            outcome["ok"] = True  # the server answered
        except (OSError, ValueError) as e:
            outcome["error"] = e

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome.get("ok"):
        reason = outcome.get("error") or f"no answer within {timeout:g} s"
        raise DataError(f"cannot reach {url} ({reason}); there seems to be no internet "
                        f"connection here. " + manual_copy_hint(out))


def verified_copy_exists(out: str, db: str, names: list[str]) -> bool:
    if not os.path.isdir(os.path.join(out, db)):
        return False
    try:
        records.record_checksums(out, [f"{db}/{n}" for n in names])
    except DataError:
        return False
    return True


def download_database(out: str, db: str, names: list[str], annotators) -> None:
    import wfdb  # imported here: the offline path above needs no wfdb

    partial = os.path.join(out, ".partial", db)
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
    try:
        wfdb.dl_database(db, partial, records=names, annotators=annotators)
        wfdb.dl_files(db, partial, [records.CHECKSUM_FILE])
    except Exception as e:
        raise DataError(f"downloading {db} from PhysioNet failed ({type(e).__name__}: {e}); "
                        "run the command again to retry") from None
    records.record_checksums(os.path.join(out, ".partial"), [f"{db}/{n}" for n in names])
    final = os.path.join(out, db)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(partial, final)


def download_all(out: str, force: bool = False, timeout: float = 5.0) -> None:
    """Download whatever of mitdb/nstdb is not already verified in `out`."""
    out = os.path.abspath(os.path.expanduser(out))
    todo = [(db, names, ann) for db, names, ann in DATABASES
            if force or not verified_copy_exists(out, db, names)]
    if not todo:
        print(f"verified copies of mitdb and nstdb already in {out}; nothing to do (--force to redo)")
        return
    check_connectivity(out, timeout=timeout)
    for db, names, annotators in todo:
        print(f"downloading {db} ({len(names)} records) into {out}/{db} ...")
        download_database(out, db, names, annotators)
    shutil.rmtree(os.path.join(out, ".partial"), ignore_errors=True)
    print(f"done: set ECG_JAX_DATA={out} or pass --config.data.data_dir={out}")
