"""Lower every network's training and evaluation programs for GPUs/TPUs here, with jax.export.

  XLA_FLAGS=--xla_force_host_platform_device_count=8 python scripts/export_programs.py \
      --platforms cuda,tpu --devices 8 --members 10 --out /tmp/exported

Writes OUT/<network>/<program>.jax_exported (or .stablehlo.mlirbc without the flatbuffers
package) and .json, and OUT/summary.json;
exits 1 with one line per failure (a lowering that fails, a host callback, a
CPU-only custom call in a GPU/TPU program, a network that is not available
unless --skip-unavailable). The work is in ecg_jax/train/export_programs.py.
"""

import argparse
import sys

from ecg_jax.errors import EcgJaxError
from ecg_jax.train.export_programs import ExportOptions, export_all


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--platforms", default="cuda,tpu", help="comma-separated, of cuda, rocm, tpu, cpu")
    p.add_argument("--devices", type=int, default=8, help="mesh size (fake CPU devices stand in)")
    p.add_argument("--members", type=int, default=10, help="members per program (padded to the mesh)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--networks", default="", help="comma-separated (default: every registered network)")
    p.add_argument("--skip-unavailable", action="store_true",
                   help="report a network whose module does not import as 'not available' and go on")
    p.add_argument("--window", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--train-windows", type=int, default=32)
    p.add_argument("--test-windows", type=int, default=16)
    a = p.parse_args(argv)
    split = lambda text: tuple(t.strip() for t in text.split(",") if t.strip())
    options = ExportOptions(platforms=split(a.platforms), devices=a.devices, members=a.members,
                            networks=split(a.networks), skip_unavailable=a.skip_unavailable, window=a.window,
                            batch_size=a.batch_size, train_windows=a.train_windows, test_windows=a.test_windows)
    try:
        failures = export_all(options, a.out, log=lambda line: print(line, file=sys.stderr, flush=True))
    except EcgJaxError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for line in failures:
        print(f"FAILED {line}", file=sys.stderr)
    print(f"{a.out}/summary.json: {'no failures' if not failures else f'{len(failures)} failure(s)'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
