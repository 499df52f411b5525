"""Training speed per device layout, measured side by side in one run (member-steps per second).

Runs the real `ecg-jax train` on the same config under each layout of
--layouts, PROCESSESxDEVICES: "1x1" is one process with one device, "1x4" one
process with 4 fake CPU devices (XLA_FLAGS=--xla_force_host_platform_device_count),
"2x2" two local processes of 2 devices each (jax.distributed over loopback).
Throughput comes from the workdir's metrics.jsonl: member-steps of every epoch
but each program's first (which includes compiling), over their epoch_seconds.
Prints each layout's rate and its ratio to the first layout, and whether the
layouts' results agree. With --repeats N the layouts run round-robin N times
(so a slow spell of a shared machine hits every layout alike) and the median
rate is reported, with the range.

  ecg-jax benchmark-layouts                       # U-Net smoke, 4 seeds, 1x1,1x4,2x2
  ecg-jax benchmark-layouts --epochs 6 --json out.json
  ecg-jax benchmark-layouts --epochs 6 --repeats 3
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from absl import flags

from ecg_jax import local_processes
from ecg_jax.atomic import write_text_atomic
from ecg_jax.errors import ConfigError

_LAYOUTS = flags.DEFINE_list("layouts", ["1x1", "1x4", "2x2"], "PROCESSESxDEVICES layouts to measure.")
_CONFIG = flags.DEFINE_string("config", "unet:smoke", "Config: a built-in name[:arg] or a file.")
_SEEDS = flags.DEFINE_integer("seeds", 4, "Members (seeds) trained.")
_WINDOWS = flags.DEFINE_integer("windows", 640, "data.n_windows (80% train).")
_EPOCHS = flags.DEFINE_integer("epochs", 6, "Epochs per run.")
_REPEATS = flags.DEFINE_integer("repeats", 1, "Round-robin repetitions of all layouts; the median rate is reported.")
_JSON = flags.DEFINE_string("json", None, "Also write the numbers to this JSON file.")


def train(layout: str, workdir: str, cache: str) -> float:
    """Run `ecg-jax train` under `layout`; its wall time in seconds."""
    processes, devices = (int(x) for x in layout.split("x"))
    cmd = [sys.executable, "-m", "ecg_jax", "train", "--config", _CONFIG.value, f"--workdir={workdir}",
           f"--config.seeds={_SEEDS.value}", f"--config.data.n_windows={_WINDOWS.value}",
           f"--config.train.epochs={_EPOCHS.value}",
           "--config.data.source=synthetic"]
    tic = time.perf_counter()
    procs = local_processes.launch(cmd, processes, devices, dict(os.environ, ECG_JAX_CACHE=cache),
                                   stdout=subprocess.DEVNULL)
    outcomes = local_processes.wait(procs, timeout=3600)
    if any(rc for rc, _, _ in outcomes):
        raise ConfigError(f"{layout}: ecg-jax train failed:\n" + "\n".join(err[-2000:] for _, _, err in outcomes))
    return time.perf_counter() - tic


def rate(workdir: str) -> float:
    """Member-steps per second over every epoch but each program's first."""
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    with open(os.path.join(workdir, "config.json")) as f:
        config = json.load(f)
    steps = round(config["data"]["n_windows"] * config["data"]["train_fraction"]) // config["train"]["batch_size"]
    timed = [r for r in rows if r["epoch"] > 1]
    return sum(steps * len(r["members"]) for r in timed) / sum(r["epoch_seconds"] for r in timed)


def results(workdir: str) -> list[dict]:
    with open(os.path.join(workdir, "results.jsonl")) as f:
        return [json.loads(line)["metrics"] for line in f]


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise ConfigError(f"unexpected arguments: {' '.join(argv[1:])}")
    root = tempfile.mkdtemp(prefix="ecg_jax_layouts_")
    cache = os.path.join(root, "cache")
    out = {}
    print(f"{_CONFIG.value}, {_SEEDS.value} seeds, {_WINDOWS.value} windows, {_EPOCHS.value} epochs; "
          f"{os.cpu_count()} CPU cores", flush=True)
    if _REPEATS.value < 1:
        raise ConfigError(f"--repeats must be at least 1, got {_REPEATS.value}")
    for repeat in range(_REPEATS.value):
        for layout in _LAYOUTS.value:
            workdir = os.path.join(root, f"{layout}-{repeat}")
            wall = train(layout, workdir, cache)
            r = out.setdefault(layout, {"member_steps_per_s_each": [], "wall_s_each": [], "results": results(workdir)})
            r["member_steps_per_s_each"].append(rate(workdir))
            r["wall_s_each"].append(wall)
            if results(workdir) != r["results"]:       # a layout repeated must give the same bits
                raise ConfigError(f"{layout}: repeat {repeat} gave other results than repeat 0")
    first = _LAYOUTS.value[0]
    for r in out.values():
        r["member_steps_per_s"] = statistics.median(r["member_steps_per_s_each"])
        r["wall_s"] = statistics.median(r["wall_s_each"])
    print(f"{'layout':<8} {'member-steps/s':>15} {'range':>13} {'vs ' + first:>9} {'wall s':>8} "
          f"{'max rel. diff of results':>26}")
    for layout, r in out.items():
        diff = max(abs(a[k] - b[k]) / max(abs(a[k]), 1e-12)
                   for a, b in zip(r["results"], out[first]["results"], strict=True) for k in a)
        r["max_relative_result_difference_vs_first"] = diff
        each = r["member_steps_per_s_each"]
        print(f"{layout:<8} {r['member_steps_per_s']:>15.1f} {min(each):>6.1f}-{max(each):<6.1f} "
              f"{r['member_steps_per_s'] / out[first]['member_steps_per_s']:>8.2f}x "
              f"{r['wall_s']:>8.1f} {diff:>26.2e}")
    if _JSON.value:
        write_text_atomic(_JSON.value, json.dumps(out, indent=1))

