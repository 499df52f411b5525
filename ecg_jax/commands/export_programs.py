"""Lower every network's training and evaluation programs for GPUs/TPUs here, with jax.export.

  XLA_FLAGS=--xla_force_host_platform_device_count=8 ecg-jax export-programs \
      --platforms cuda,tpu --devices 8 --members 10 --out /tmp/exported

Writes OUT/<network>/<program>.jax_exported (or .stablehlo.mlirbc without the
flatbuffers package) and .json, and OUT/summary.json; exits 1 with one line per
failure (a lowering that fails, a host callback, a CPU-only custom call in a
GPU/TPU program, a network that is not available unless --skip_unavailable).
The work is in ecg_jax/train/export_programs.py.
"""

import sys

from absl import flags

from ecg_jax.config_utils import as_list
from ecg_jax.errors import ConfigError

_PLATFORMS = flags.DEFINE_list("platforms", ["cuda", "tpu"], "of cuda, rocm, tpu, cpu")
_DEVICES = flags.DEFINE_integer("devices", 8, "mesh size (fake CPU devices stand in)")
_MEMBERS = flags.DEFINE_integer("members", 10, "members per program (padded to the mesh)")
_OUT = flags.DEFINE_string("out", None, "output folder", required=True)
_NETWORKS = flags.DEFINE_list("networks", [], "networks to lower (default: every registered network)")
_SKIP = flags.DEFINE_bool("skip_unavailable", False,
                          "report a network whose module does not import as 'not available' and go on")
_WINDOW = flags.DEFINE_integer("window", 64, "window length of the lowered programs")
_BATCH = flags.DEFINE_integer("batch_size", 8, "training batch size")
_TRAIN = flags.DEFINE_integer("train_windows", 32, "training windows")
_TEST = flags.DEFINE_integer("test_windows", 16, "test windows")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace the programs of an earlier export in --out.")


def main(argv):
    if len(argv) > 1:
        raise ConfigError(f"unexpected arguments: {' '.join(argv[1:])}")
    # lazy: the heavy code loads after the flags are parsed, so --help and flag errors are fast
    from ecg_jax.train.export_programs import ExportOptions, export_all

    options = ExportOptions(platforms=tuple(as_list(_PLATFORMS.value)), devices=_DEVICES.value,
                            members=_MEMBERS.value, networks=tuple(as_list(_NETWORKS.value)),
                            skip_unavailable=_SKIP.value, window=_WINDOW.value, batch_size=_BATCH.value,
                            train_windows=_TRAIN.value, test_windows=_TEST.value)
    failures = export_all(options, _OUT.value, log=lambda line: print(line, file=sys.stderr, flush=True),
                          overwrite=_OVERWRITE.value)
    for line in failures:
        print(f"FAILED {line}", file=sys.stderr)
    print(f"{_OUT.value}/summary.json: {'no failures' if not failures else f'{len(failures)} failure(s)'}")
    if failures:
        sys.exit(1)
