#!/usr/bin/env bash
# The prepared TPU check (a TPU VM: v5e-8, v4-8, or one worker of a slice): the devices, training
# throughput of U-Net and DANCER in every mode (`ecg-jax benchmark`, both loops), their compiled memory
# per member and XLA's cost per member-step (scripts/benchmark_memory.py), then a short smoke training
# run at each precision the README names (highest, the default, and default: one bfloat16 pass).
# Run from the repo root with $OUT set to an (empty) output folder; everything lands in $OUT (log.txt,
# devices.json, benchmark_train.json, benchmark_memory.json, results_<precision>.jsonl,
# members.json). Each step has its own timeout (30+280+200+2x150 s, under 14 minutes); a step that
# fails or times out does not stop the next one (the script exits non-zero at the end instead).
#
#   pip install -r requirements.txt && pip install "jax[tpu]==0.10.2" && pip install -e .
#   OUT=/tmp/tpu bash scripts/tpu_benchmark.sh
set -euo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the output folder}"
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1   # everything below also goes to $OUT/log.txt
tee_pid=$!
export PYTHONUNBUFFERED=1
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"   # scripts/*.py import ecg_jax from this checkout

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

step "devices" 30 "$PY" -c "import json, jax, jaxlib, flax, optax
d = jax.devices()
info = {'jax': jax.__version__, 'jaxlib': jaxlib.__version__, 'flax': flax.__version__, 'optax': optax.__version__,
        'backend': jax.default_backend(), 'process_count': jax.process_count(),
        'devices': [str(x) for x in d], 'device_kind': d[0].device_kind,
        'memory_stats': (d[0].memory_stats() or {}) if hasattr(d[0], 'memory_stats') else {}}
json.dump(info, open('$OUT/devices.json', 'w'), indent=1); print(info)"

# Rewritten after every case, so a timeout keeps what was measured ("complete": false).
step "benchmark_train" 280 "$PY" -m ecg_jax benchmark --models unet,dancer --loops scan,host \
  --steps 20 --repeats 2 --json "$OUT/benchmark_train.json"

step "benchmark_memory" 200 "$PY" scripts/benchmark_memory.py --networks unet,dancer --sizes 1,10,100 \
  --json "$OUT/benchmark_memory.json"

for precision in highest default; do
  rm -rf "/tmp/tpu_smoke_$precision"
  step "smoke train ($precision)" 150 "$PY" -m ecg_jax train --config dancer:smoke \
    --workdir "/tmp/tpu_smoke_$precision" --config.data.source=synthetic --config.seeds=8 \
    --config.train.epochs=2 --config.train.precision=$precision
  if [ -f "/tmp/tpu_smoke_$precision/results.jsonl" ]; then
    cp "/tmp/tpu_smoke_$precision/results.jsonl" "$OUT/results_$precision.jsonl"
    cp "/tmp/tpu_smoke_$precision/members.json" "$OUT/members.json"
  else
    echo "missing /tmp/tpu_smoke_$precision/results.jsonl"; status=1
  fi
done

echo "=== done ($(date -u +%H:%M:%S)), status $status"
exec >&- 2>&-            # let tee see the end of its input and finish log.txt
wait "$tee_pid" 2>/dev/null || true
exit $status
