#!/usr/bin/env bash
# Install everything (the pinned dependencies, the optional PyTorch twins used
# by the speed benchmark, so their tests run instead of skipping, and this
# package itself, editable: scripts/*.py and the tests' subprocesses import it)
# and run the test suite, including tests/test_installed_package.py, which
# builds a wheel and uses it from a fresh virtualenv.
set -euo pipefail
cd "$(dirname "$0")/.."
# setuptools>=68 builds the package (pyproject.toml); a fresh virtualenv of Python 3.11 has 65.
python -m pip install -q -r requirements.txt -r benchmarks/requirements.txt "setuptools>=68"
# No build isolation: the build needs only setuptools, installed above, so no index is asked.
python -m pip install -q --no-deps --no-build-isolation -e .
export ECG_JAX_DATA="${ECG_JAX_DATA:-$(cd .. && pwd)/shared/data}"
python -m pytest -q "$@"
