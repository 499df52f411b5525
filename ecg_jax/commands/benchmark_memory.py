"""Per-member compiled memory of every network's training program, and XLA's cost of one member-step.

  ecg-jax benchmark-memory --json memory.json           # every available network
  ecg-jax benchmark-memory --networks unet --sizes 1,10

Prints a markdown table (BENCHMARKS.md, "Memory per member"); the work is in
ecg_jax/train/benchmark_memory.py. Runs unchanged on a GPU or TPU, where its
numbers replace the CPU-derived predictions.
"""

import sys

from absl import flags

from ecg_jax.config_utils import as_list
from ecg_jax.errors import ConfigError

_NETWORKS = flags.DEFINE_list("networks", [], "networks to measure (default: every network)")
_SIZES = flags.DEFINE_list("sizes", ["1", "10", "100"], "members per program to compile (empty: the cost only)")
_JSON = flags.DEFINE_string("json", "", "write the measurements here")


def main(argv):
    if len(argv) > 1:
        raise ConfigError(f"unexpected arguments: {' '.join(argv[1:])}")
    # lazy: the heavy code loads after the flags are parsed, so --help and flag errors are fast
    from ecg_jax.models import MODEL_NAMES
    from ecg_jax.train.benchmark_memory import markdown, prediction_markdown, run

    networks = list(as_list(_NETWORKS.value)) or list(MODEL_NAMES)
    unknown = [n for n in networks if n not in MODEL_NAMES]
    if unknown:
        raise ConfigError(f"unknown network(s) {', '.join(unknown)}; valid: {', '.join(MODEL_NAMES)}")
    try:
        sizes = sorted({int(s) for s in as_list(_SIZES.value) if str(s).strip()})
    except ValueError:
        raise ConfigError(f"--sizes must be integers, got {','.join(_SIZES.value)}") from None
    rows = run(networks, sizes, _JSON.value or None, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(markdown(rows))
    prediction = prediction_markdown(rows)
    if prediction:   # only when every network of a grid was measured
        print("\nPredicted grid wall time (compute at 25% of peak, memory at 50% of bandwidth; a PREDICTION):")
        print(prediction)
