"""Training throughput, measured side by side in one run (member-steps per second).

A member-step is one Adam step (batch 64, window 256) of one member, so every
number compares directly. For each network of --models (U-Net and DANCER by
default) and each loop of --loops (default: this backend's auto loop):

  (a) one-by-one   --seeds one-member programs run back to back, the same
                   compiled program reused (how training runs on CPU)
  (b) vmapped      --seeds members in one program, member_parallelism=vmap
  (c) lax.mapped   --seeds members in one program, member_parallelism=map
  (d) PyTorch eager twin, one member, on the CPU (--torch; skipped if torch
      does not import; benchmarks/torch_train_benchmark.py of a clone, run
      in its own process)

plus the ratios (b)/(a) and (c)/(a) per loop, and the predicted wall time of
the paper's whole grid and of one dataset's 10-seed DANCER run from the best
measured mode. Compile time (first call minus a steady epoch) is reported
separately and never counted in a throughput.

  ecg-jax benchmark                                # unet,dancer, auto loop
  ecg-jax benchmark --loops host,scan --json out.json
  ecg-jax benchmark --models unet --seeds 2 --steps 2 --repeats 1 --notorch

Random normalised data of the protocol's shapes are used: throughput does not
depend on the values. Each case runs one warm-up (compile) epoch, then
--repeats timed epochs of --steps steps per program; every timer stops only
after the epoch's losses are on the host. Members are padded to a multiple of
the device count as in training; padded copies are not counted. The persistent
XLA cache is off unless $ECG_JAX_XLA_CACHE names a folder, so compile times are
cold. Targets live in BENCHMARKS.md, not in tests.
"""

import json
import os
import subprocess
import sys
import time

import jax
import numpy as np
from absl import flags

from ecg_jax.atomic import write_text_atomic
from ecg_jax.cli import XLA_CACHE_ENV
from ecg_jax.errors import ConfigError
from ecg_jax.models import create_model
from ecg_jax.train import sharding
from ecg_jax.train.device_data import MemberConsts, SplitArrays
from ecg_jax.train.engine import TrainSettings
from ecg_jax.train.experiment import resolve_loop, resolve_parallelism
from ecg_jax.train.program import LOOPS, TrainProgram

# Cold compile times unless a cache folder is asked for.
ENVIRONMENT_DEFAULTS = {XLA_CACHE_ENV: "off"}
# benchmarks/ of a clone (not part of the installed package)
TORCH_BENCHMARK = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                               "benchmarks", "torch_train_benchmark.py")

_MODELS = flags.DEFINE_list("models", ["unet", "dancer"], "Networks to measure.")
_LOOPS = flags.DEFINE_list("loops", None, "Epoch loops to measure, of host,scan (default: this backend's auto loop).")
_SEEDS = flags.DEFINE_integer("seeds", 10, "Members per case: programs in a row (a), members in one program (b, c).")
_STEPS = flags.DEFINE_integer("steps", 10, "Optimisation steps per timed epoch.")
_REPEATS = flags.DEFINE_integer("repeats", 2, "Timed epochs per program (after one warm-up/compile epoch).")
_TORCH = flags.DEFINE_bool("torch", True, "Measure the PyTorch eager twin (d) when torch imports.")
_JSON = flags.DEFINE_string("json", None, "Also write all numbers to this JSON file (rewritten after each network).")

BATCH, WINDOW, CHANNELS = 64, 256, 2
# The paper's grid, in member-steps: 9 networks (U-Net, DACNN, ACDAE, AGS-UNet,
# DANCER and CIADNet with its 3 ablation variants) x 20 datasets x 10 seeds x
# 100 epochs x 125 steps (8000 training windows / batch 64).
GRID_NETWORKS = ("unet", "dacnn", "acdae", "ags_unet", "dancer",
                 "ciadnet", "ciadnet_channel", "ciadnet_spatial", "ciadnet_base")
GRID_DATASETS, GRID_SEEDS, GRID_EPOCHS, GRID_STEPS = 20, 10, 100, 125
CASES = ("one-by-one", "vmap", "map")
CASE_LABELS = {"one-by-one": "(a) one-by-one", "vmap": "(b) vmapped", "map": "(c) lax.mapped"}


def host_problem(steps: int) -> SplitArrays:
    """Random normalised windows, exactly one epoch of `steps` batches."""
    rng = np.random.default_rng(0)
    n = steps * BATCH
    return SplitArrays(rng.standard_normal((n, WINDOW, CHANNELS), np.float32),
                       rng.standard_normal((3, n, WINDOW, CHANNELS), np.float32))


def host_consts(n_members: int) -> MemberConsts:
    """emb noise at 0 dB, identity normalisation."""
    return MemberConsts(np.ones((n_members, 3), np.float32), np.ones((n_members,), np.float32),
                        np.zeros((n_members,), bool), np.zeros((n_members,), bool), np.zeros((n_members,), np.float32),
                        np.zeros((n_members, CHANNELS), np.float32), np.ones((n_members, CHANNELS), np.float32))


def settings(steps: int, parallelism: str) -> TrainSettings:
    return TrainSettings(batch_size=BATCH, steps_per_epoch=steps, window=WINDOW, channels=CHANNELS,
                         learning_rate=1e-3, lr_decay_epoch=40, lr_decay_factor=0.1,
                         member_parallelism=parallelism)


def measure(model_name: str, loop: str, case: str, seeds: int, steps: int, repeats: int, mesh, data) -> dict:
    """Member-steps/s of `seeds` members, as one program (vmap/map) or `seeds` one-member programs in a row."""
    members, programs = (1, seeds) if case == "one-by-one" else (seeds, 1)
    parallelism = resolve_parallelism("auto") if case == "one-by-one" else case
    model = create_model(model_name)
    n_pad = sharding.padded_count(members, mesh)
    consts = sharding.put_members(host_consts(members), mesh, n_pad)
    program = TrainProgram(model, settings(steps, parallelism), mesh, loop)

    def seeds_of(p: int):
        return sharding.put_members(np.arange(p * members, (p + 1) * members, dtype=np.int32), mesh, n_pad)

    tic = time.perf_counter()   # compile (init and epoch) + the warm-up epoch
    state = program.init(seeds_of(0))
    state, losses = program.epoch(state, consts, data)
    sharding.to_host(losses)
    first_s = time.perf_counter() - tic
    n_params = sum(int(np.prod(x.shape[1:])) for x in jax.tree_util.tree_leaves(state.params))

    seconds, finite = 0.0, True
    for p in range(programs):       # one program after another, as training does on CPU
        if p:                       # a new member's init: once per 12,500 steps in training, not timed
            state = jax.block_until_ready(program.init(seeds_of(p)))
        for _ in range(repeats):
            tic = time.perf_counter()
            state, losses = program.epoch(state, consts, data)
            losses = sharding.to_host(losses)
            seconds += time.perf_counter() - tic
            finite &= bool(np.isfinite(losses[:members]).all())
    epochs = programs * repeats
    return {"model": model_name, "loop": loop, "case": case, "member_parallelism": parallelism,
            "members_per_program": members, "padded_members": n_pad, "programs": programs,
            "n_params": n_params, "member_steps_per_s": epochs * members * steps / seconds,
            "step_ms": 1e3 * seconds / (epochs * steps), "timed_s": seconds,
            "first_call_s": first_s, "compile_s": max(0.0, first_s - seconds / epochs),
            "losses_finite": finite}


def measure_torch_twin(model_name: str, steps: int) -> dict | None:
    """(d): benchmarks/torch_train_benchmark.py in its own process (its folder is not a package, and
    torch's threads then never compete with JAX's); None, said on stderr, when it cannot run."""
    if not os.path.isfile(TORCH_BENCHMARK):
        print(f"(d) skipped: no {TORCH_BENCHMARK} (the PyTorch twins live in a clone of the repository)",
              file=sys.stderr)
        return None
    proc = subprocess.run([sys.executable, TORCH_BENCHMARK, "--models", model_name, "--batch-size", str(BATCH),
                           "--steps", str(max(steps, 10)), "--json"], capture_output=True, text=True)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or ["no output"]
        hint = "; pip install -r benchmarks/requirements.txt" if "No module named 'torch'" in lines[-1] else ""
        print(f"(d) skipped for {model_name}: {lines[-1]}{hint}", file=sys.stderr)
        return None
    r = json.loads(proc.stdout)["results"][0]
    return {"model": model_name, "loop": "eager", "case": "torch", "device": "cpu", "threads": r["threads"],
            "members_per_program": 1, "programs": 1, "n_params": r["n_params"],
            "member_steps_per_s": r["steps_per_s"], "step_ms": r["step_ms"]}


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


TABLE_HEADER = (f"  {'loop':<5} {'case':<16} {'members':>7} {'programs':>8} {'member-steps/s':>15} {'ms/step':>9} "
                f"{'compile s':>10} {'vs (a)':>7}")


def print_row(r: dict, base: float | None) -> None:
    """One table line; `base` is the loop's one-by-one rate (None for the PyTorch twin)."""
    if r["case"] == "torch":
        print(f"  {'eager':<5} {'(d) PyTorch CPU':<16} {1:>7} {1:>8} {r['member_steps_per_s']:>15.1f} "
              f"{r['step_ms']:>9.1f} {'-':>10}   ({r['threads']} threads)", flush=True)
        return
    flag = "" if r["losses_finite"] else "  (non-finite losses!)"
    pad = r["padded_members"] - r["members_per_program"]
    members = f"{r['members_per_program']}" + (f"+{pad}pad" if pad else "")   # padded copies: computed, not counted
    print(f"  {r['loop']:<5} {CASE_LABELS[r['case']]:<16} {members:>7} {r['programs']:>8} "
          f"{r['member_steps_per_s']:>15.1f} {r['step_ms']:>9.1f} {r['compile_s']:>10.1f} "
          f"{r['member_steps_per_s'] / base:>6.2f}x{flag}", flush=True)


def predictions(best: dict[str, dict]) -> dict:
    """Wall time of the paper grid and of one dataset's 10-seed DANCER run from the best measured rates."""
    per_network = GRID_DATASETS * GRID_SEEDS * GRID_EPOCHS * GRID_STEPS
    measured = {n: b["member_steps_per_s"] for n, b in best.items() if n in GRID_NETWORKS}
    out = {}
    if measured:
        mean_rate = sum(measured.values()) / len(measured)
        others = [n for n in GRID_NETWORKS if n not in measured]
        seconds = sum(per_network / measured.get(n, mean_rate) for n in GRID_NETWORKS)
        out["paper_grid"] = {"member_steps": per_network * len(GRID_NETWORKS), "seconds": seconds,
                             "measured": {n: {"member_steps_per_s": r, "mode": best[n]["mode"]}
                                          for n, r in measured.items()},
                             "assumed_for_others": others, "assumed_member_steps_per_s": mean_rate}
    if "dancer" in best:
        steps = GRID_SEEDS * GRID_EPOCHS * GRID_STEPS
        out["dancer_one_dataset"] = {"member_steps": steps, "mode": best["dancer"]["mode"],
                                     "seconds": steps / best["dancer"]["member_steps_per_s"]}
    return out


def print_predictions(pred: dict) -> None:
    if "paper_grid" in pred:
        g = pred["paper_grid"]
        measured = ", ".join(f"{n} {m['member_steps_per_s']:.1f}/s ({m['mode']})" for n, m in g["measured"].items())
        print(f"\npaper grid: {len(GRID_NETWORKS)} networks x {GRID_DATASETS} datasets x {GRID_SEEDS} seeds x "
              f"{GRID_EPOCHS} epochs x {GRID_STEPS} steps = {g['member_steps']:,} member-steps: "
              f"predicted {hours(g['seconds'])}")
        print(f"  measured networks at their best mode: {measured}")
        if g["assumed_for_others"]:
            print(f"  the other {len(g['assumed_for_others'])} networks ({', '.join(g['assumed_for_others'])}) "
                  f"NOT measured: assumed at the mean of the measured networks' best rates, "
                  f"{g['assumed_member_steps_per_s']:.1f} member-steps/s")
        print(f"  (from {_SEEDS.value}-member programs; training may put more members in one program "
              "on an accelerator)")
    if "dancer_one_dataset" in pred:
        d = pred["dancer_one_dataset"]
        print(f"10-seed 100-epoch DANCER run of one dataset ({d['member_steps']:,} member-steps): "
              f"predicted {hours(d['seconds'])} ({d['mode']})")


def write_json(path: str, payload: dict) -> None:
    write_text_atomic(path, json.dumps(payload, indent=1))


def main(argv):
    if len(argv) > 1:
        raise ConfigError(f"unexpected arguments: {' '.join(argv[1:])}")
    steps, repeats, seeds = _STEPS.value, _REPEATS.value, _SEEDS.value
    if min(steps, repeats, seeds) < 1:
        raise ConfigError("--steps, --repeats and --seeds must be >= 1")
    loops = list(dict.fromkeys(resolve_loop(x) for x in (_LOOPS.value or ["auto"])))
    if any(loop not in LOOPS for loop in loops):
        raise ConfigError(f"--loops takes {', '.join(LOOPS)} or auto, got {','.join(_LOOPS.value)}")

    mesh = sharding.member_mesh()
    header = {"backend": jax.default_backend(), "device_kind": jax.devices()[0].device_kind,
              "n_devices": len(jax.devices()), "cpu_count": os.cpu_count(), "jax": jax.__version__,
              "batch": BATCH, "window": WINDOW, "steps": steps, "repeats": repeats, "seeds": seeds,
              "loops": loops, "auto_loop": resolve_loop("auto")}
    print(f"backend {header['backend']}, device kind {header['device_kind']}, {header['n_devices']} device(s), "
          f"{header['cpu_count']} CPU cores, jax {header['jax']}")
    print(f"batch {BATCH}, window {WINDOW}; {steps} steps/epoch, {repeats} timed epoch(s) per program after 1 "
          f"warm-up; {seeds} members per case; loops {','.join(loops)} (auto here: {header['auto_loop']})")

    data = sharding.put_replicated(host_problem(steps), mesh)
    results, ratios, best = [], {}, {}

    def save(complete: bool) -> None:   # after every case, so a run stopped early keeps what it measured
        if _JSON.value:
            write_json(_JSON.value, {**header, "results": results, "ratios": ratios, "best": best,
                                     "predictions": predictions(best), "complete": complete})

    for name in _MODELS.value:
        ratios[name] = {}
        for loop in loops:
            for case in CASES:
                r = measure(name, loop, case, seeds, steps, repeats, mesh, data)
                if not results or results[-1]["model"] != name:
                    print(f"\n{name} ({r['n_params']:,} parameters)\n{TABLE_HEADER}")
                if case == "one-by-one":
                    base = r["member_steps_per_s"]
                else:
                    ratios[name][f"{loop}/{case}_vs_one-by-one"] = r["member_steps_per_s"] / base
                print_row(r, base)
                results.append(r)
                if r["member_steps_per_s"] > best.get(name, {}).get("member_steps_per_s", 0.0):
                    best[name] = {"mode": f"{loop}/{case}", "member_steps_per_s": r["member_steps_per_s"]}
                save(False)
        if _TORCH.value:
            twin = measure_torch_twin(name, steps)
            if twin:
                print_row(twin, None)
                results.append(twin)
                save(False)
        for loop in loops:
            print(f"  {loop}: vmapped/one-by-one {ratios[name][f'{loop}/vmap_vs_one-by-one']:.2f}x, "
                  f"mapped/one-by-one {ratios[name][f'{loop}/map_vs_one-by-one']:.2f}x ({seeds} members each)")
    pred = predictions(best)
    print_predictions(pred)
    save(True)
    if _JSON.value:
        print(f"\nwrote {_JSON.value}")

