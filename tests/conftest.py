"""Shared fixtures.

The PhysioNet copies live in ../shared/data beside the checkout (or wherever
$ECG_JAX_DATA points). Tests that need them use the `shared_data_dir`
fixture: outside CI a missing folder skips those tests with a reason; in CI
(CI=true) it is a failure, never a skip.
"""

from __future__ import annotations

import os
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent


def find_shared_data() -> pathlib.Path | None:
    env = os.environ.get("ECG_JAX_DATA")
    candidates = [pathlib.Path(env)] if env else []
    candidates.append(REPO_ROOT.parent / "shared" / "data")
    for c in candidates:
        if (c / "mitdb").is_dir() and (c / "nstdb").is_dir():
            return c.resolve()
    return None


@pytest.fixture(scope="session")
def shared_data_dir() -> pathlib.Path:
    path = find_shared_data()
    if path is None:
        msg = ("PhysioNet data not found: looked in $ECG_JAX_DATA and "
               f"{REPO_ROOT.parent / 'shared' / 'data'} (need mitdb/ and nstdb/)")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg + " -- required when CI=true")
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def published_json() -> pathlib.Path:
    """../shared/spec/published.json (or the spec folder beside $ECG_JAX_DATA): required in CI."""
    candidates = [REPO_ROOT.parent / "shared" / "spec" / "published.json"]
    data = find_shared_data()
    if data is not None:
        candidates.insert(0, data.parent / "spec" / "published.json")
    for c in candidates:
        if c.is_file():
            return c
    msg = f"published numbers not found: looked at {', '.join(map(str, candidates))}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(msg + " -- required when CI=true")
    pytest.skip(msg)


def pytest_sessionstart(session) -> None:
    """Use the persistent XLA cache (tests compile the same programs many times); and
    in CI, a missing data folder stops the whole run before any test: loud, not skipped."""
    from ecg_jax.cli import configure_jax

    configure_jax()
    if os.environ.get("CI", "").lower() == "true" and find_shared_data() is None:
        raise pytest.UsageError(
            "CI=true but the PhysioNet copies were not found in $ECG_JAX_DATA or "
            f"{REPO_ROOT.parent / 'shared' / 'data'}; CI must run with ../shared/data beside the checkout")
