"""Per-member compiled memory of every network's training program, and XLA's cost of one member-step.

  python scripts/benchmark_memory.py --json memory.json           # every available network
  python scripts/benchmark_memory.py --networks unet --sizes 1,10

Prints a markdown table (BENCHMARKS.md, "Memory per member"); the work is in
ecg_jax/train/benchmark_memory.py. Runs unchanged on a GPU or TPU, where its
numbers replace the CPU-derived predictions.
"""

import argparse
import sys

from ecg_jax.train.benchmark_memory import markdown, run


def main(argv=None) -> int:
    from ecg_jax.models import MODEL_NAMES

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--networks", default=",".join(MODEL_NAMES), help="comma-separated (default: every network)")
    p.add_argument("--sizes", default="1,10,100", help="members per program to compile ('' for the cost only)")
    p.add_argument("--json", default="", help="write the measurements here")
    a = p.parse_args(argv)
    networks = [n.strip() for n in a.networks.split(",") if n.strip()]
    unknown = [n for n in networks if n not in MODEL_NAMES]
    if unknown:
        print(f"error: unknown network(s) {', '.join(unknown)}; valid: {', '.join(MODEL_NAMES)}", file=sys.stderr)
        return 2
    try:
        sizes = sorted({int(s) for s in a.sizes.split(",") if s.strip()})   # none: the cost analysis only
    except ValueError:
        print(f"error: --sizes must be integers, got {a.sizes!r}", file=sys.stderr)
        return 2
    rows = run(networks, sizes, a.json or None, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
