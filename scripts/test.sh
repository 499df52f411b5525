#!/usr/bin/env bash
# Install everything (including the optional PyTorch twins used by the speed
# benchmark, so their tests run instead of skipping) and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -r requirements.txt -r benchmarks/requirements.txt
export ECG_JAX_DATA="${ECG_JAX_DATA:-$(cd .. && pwd)/shared/data}"
python -m pytest -q "$@"
