#!/usr/bin/env bash
# The one prepared accelerator check (H100/H200): training throughput of U-Net
# and DANCER in every mode (`ecg-jax benchmark`, both loops), then a
# short GPU smoke training run. Run from the repo root with $OUT set to an
# (empty) output folder; everything lands in $OUT (log.txt, gpu.csv,
# benchmark_train.json, benchmark_memory.json, results.jsonl, members.json).
# Finishes in under 10 minutes (timeouts 30+30+280+150+120 s): each step has its own timeout, and a step that fails or times out
# does not stop the next one (the script exits non-zero at the end instead).
#
#   OUT=/tmp/out bash scripts/gpu_benchmark.sh
#
# The device image has jax/flax/optax/orbax/chex/absl-py (and pandas, fsspec,
# pyyaml), but NOT wfdb, pywavelets or ml-collections, which ecg_jax imports
# (the benchmark itself needs ml-collections). Carry their wheels in .whl/
# (git-ignored; name it in the remote tool's `carry`), made here with e.g.
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl wfdb==4.3.1 PyWavelets==1.9.0 ml-collections==1.1.0
# This script installs them itself when a .whl folder exists:
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
#     --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
set -euo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the output folder}"
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1   # everything below also goes to $OUT/log.txt
tee_pid=$!
export PYTHONUNBUFFERED=1

PY=${PYTHON:-$(command -v python3 || command -v python)}
status=0
step() {   # step NAME SECONDS CMD...: run CMD under a timeout, log its exit status, carry on
  local name=$1 limit=$2 rc=0
  shift 2
  echo "=== $name ($(date -u +%H:%M:%S), limit ${limit}s): $*"
  timeout --kill-after=5 "$limit" "$@" || rc=$?
  echo "=== $name: exit $rc$([ "$rc" = 124 ] && echo ' (timed out)')"
  [ "$rc" = 0 ] || status=1
}

if [ -d .whl ] && compgen -G ".whl/*.whl" > /dev/null; then
  step "install carried wheels" 30 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi

if command -v nvidia-smi > /dev/null; then
  nvidia-smi --query-gpu=name,memory.total --format=csv > "$OUT/gpu.csv" || status=1
  cat "$OUT/gpu.csv"
fi
step "versions" 30 "$PY" -c "import jax, jaxlib, flax, optax; print('jax', jax.__version__, 'jaxlib', jaxlib.__version__,
'flax', flax.__version__, 'optax', optax.__version__); print(jax.devices())"

# Rewritten after every case, so a timeout keeps what was measured ("complete": false).
# `python -m ecg_jax` from the repo root: the package need not be installed on the device.
step "benchmark_train" 280 "$PY" -m ecg_jax benchmark --models unet,dancer --loops scan,host \
  --steps 20 --repeats 2 --json "$OUT/benchmark_train.json"

# Per-member compiled memory and XLA's cost per member-step on this accelerator (BENCHMARKS.md predicts
# them from the CPU); rewritten after every network.
step "benchmark_memory" 150 env PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" "$PY" scripts/benchmark_memory.py --networks unet,dancer --sizes 1,10,100 \
  --json "$OUT/benchmark_memory.json"

rm -rf /tmp/gpu_smoke
step "smoke train" 120 "$PY" -m ecg_jax train --config dancer:smoke --workdir /tmp/gpu_smoke \
  --config.data.source=synthetic --config.seeds=10 --config.train.epochs=2
for f in results.jsonl members.json; do
  if [ -f "/tmp/gpu_smoke/$f" ]; then cp "/tmp/gpu_smoke/$f" "$OUT/$f"; else echo "missing /tmp/gpu_smoke/$f"; status=1; fi
done

echo "=== done ($(date -u +%H:%M:%S)), status $status"
exec >&- 2>&-            # let tee see the end of its input and finish log.txt
wait "$tee_pid" 2>/dev/null || true
exit $status
