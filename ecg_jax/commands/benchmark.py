"""Training throughput, measured side by side in one run (member-steps per second), JAX and PyTorch.

A member-step is one Adam step (batch 64, window 256) of one member, so every
number compares directly. For each network of --models (U-Net and DANCER by
default; `all`: every registered network) and each loop of --loops (default:
this backend's auto loop), the cases of --cases:

  (a) one-by-one   --seeds one-member programs run back to back, the same
                   compiled program reused (how training runs on CPU)
  (b) vmapped      --seeds members in one program, member_parallelism=vmap
  (c) lax.mapped   --seeds members in one program, member_parallelism=map

then the network's PyTorch twin (benchmarks/torch_twins.py of a clone says
which; benchmarks/torch_train_benchmark.py trains it), one member on the CPU,
each mode in its own process (torch's threads never compete with JAX's):

  (d) PyTorch eager           (--torch; --notorch: neither (d) nor (e))
  (e) PyTorch torch.compile   (--torch_compile), killed after
                              --torch_compile_timeout seconds

A network without a twin, or a twin that cannot run (torch missing, a compile
that fails or times out), gets a row that says why instead of a number. Also
per network: the eval-mode forward MFLOPs per window (XLA's cost analysis of
the compiled forward, as `ecg-jax summary`) and the FLOPs of one training step
(XLA's cost analysis of the JAX step, as `ecg-jax benchmark-memory`), which
with the rates gives GFLOP/s achieved (the twins compute the same FLOPs). The
ratios (b)/(a) and (c)/(a) per loop, and the predicted wall time of the
paper's whole grid and of one dataset's 10-seed DANCER run from the best
measured JAX mode, follow; at the end a markdown table, one row per network
(JAX's default and best mode, eager, torch.compile, compile seconds, FLOPs),
with the machine and the command in its header, ready for BENCHMARKS.md.
Compile time (first call minus a steady epoch or step) is reported separately
and never counted in a throughput.

  ecg-jax benchmark                                # unet,dancer, auto loop
  ecg-jax benchmark --models all --json B.json     # the whole zoo
  ecg-jax benchmark --loops host,scan --json out.json
  ecg-jax benchmark --models unet --seeds 2 --steps 2 --repeats 1 --notorch

Random normalised data of the protocol's shapes are used: throughput does not
depend on the values. Each JAX case runs one warm-up (compile) epoch, then
--repeats timed epochs of --steps steps per program; every timer stops only
after the epoch's losses are on the host. A twin runs min(5, --steps) warm-up
steps (the first compiles under torch.compile), then --steps x --repeats timed
steps. Members are padded to a multiple of the device count as in training;
padded copies are not counted. The persistent XLA cache is off unless
$ECG_JAX_XLA_CACHE names a folder, and torch.compile gets a fresh inductor
cache unless $TORCHINDUCTOR_CACHE_DIR names one, so compile times are cold.
Targets live in BENCHMARKS.md, not in tests.
"""

import importlib.util
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from ecg_jax.atomic import write_text_atomic
from ecg_jax.cli import XLA_CACHE_ENV
from ecg_jax.errors import ConfigError
from ecg_jax.models import MODEL_NAMES, create_model
from ecg_jax.models.summary import flops_of
from ecg_jax.train import sharding
from ecg_jax.train.device_data import MemberConsts, SplitArrays, abstract_member_consts
from ecg_jax.train.engine import TrainSettings, hyper_of, make_init_one
from ecg_jax.train.experiment import resolve_loop, resolve_parallelism
from ecg_jax.train.program import LOOPS, TrainProgram

# Cold compile times unless a cache folder is asked for.
ENVIRONMENT_DEFAULTS = {XLA_CACHE_ENV: "off"}
# benchmarks/ of a clone (not part of the installed package)
BENCHMARKS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                              "benchmarks")
TORCH_BENCHMARK = os.path.join(BENCHMARKS_DIR, "torch_train_benchmark.py")
TORCH_TWINS = os.path.join(BENCHMARKS_DIR, "torch_twins.py")
TORCH_WARMUP_STEPS = 5

_MODELS = flags.DEFINE_list("models", ["unet", "dancer"], "Networks to measure; `all`: every registered network.")
_LOOPS = flags.DEFINE_list("loops", None, "Epoch loops to measure, of host,scan (default: this backend's auto loop).")
_CASES = flags.DEFINE_list("cases", ["one-by-one", "vmap", "map"], "JAX cases to measure, of one-by-one,vmap,map.")
_SEEDS = flags.DEFINE_integer("seeds", 10, "Members per case: programs in a row (a), members in one program (b, c).")
_STEPS = flags.DEFINE_integer("steps", 10, "Optimisation steps per timed epoch.")
_REPEATS = flags.DEFINE_integer("repeats", 2, "Timed epochs per program (after one warm-up/compile epoch).")
_TORCH = flags.DEFINE_bool("torch", True, "Measure the PyTorch twin, (d) and (e); --notorch: JAX only.")
_TORCH_COMPILE = flags.DEFINE_bool("torch_compile", True, "Also measure the twin under torch.compile (e).")
_TORCH_COMPILE_TIMEOUT = flags.DEFINE_integer(
    "torch_compile_timeout", 300, "Seconds a network's torch.compile run (compile, warm-up and timed steps) may "
    "take before it is killed and its row says so.")
_TORCH_THREADS = flags.DEFINE_integer("torch_threads", 0, "torch threads (0: all cores, torch's default).")
_JSON = flags.DEFINE_string("json", None, "Also write all numbers to this JSON file (rewritten after each network).")
_MARKDOWN = flags.DEFINE_string("markdown", None, "Also write the final markdown table to this file.")

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


def host_consts(n_members: int, steps: int = 1) -> MemberConsts:
    """emb noise at 0 dB, identity normalisation; the optimizer's hyperparameters as values, as a
    training run passes them (train/experiment.py)."""
    hyper = hyper_of({"learning_rate": 1e-3, "lr_decay_epoch": (40,), "lr_decay_factor": (0.1,)}, steps)
    return MemberConsts(np.ones((n_members, 3), np.float32), np.ones((n_members,), np.float32),
                        np.zeros((n_members,), bool), np.zeros((n_members,), bool), np.zeros((n_members,), np.float32),
                        np.zeros((n_members, CHANNELS), np.float32), np.ones((n_members, CHANNELS), np.float32),
                        jax.tree_util.tree_map(lambda v: np.stack([v] * n_members), hyper))


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
    consts = sharding.put_members(host_consts(members, steps), mesh, n_pad)
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


def twin_registry():
    """benchmarks/torch_twins.py of a clone (it imports no torch), or None outside a clone."""
    if not os.path.isfile(TORCH_TWINS):
        return None
    spec = importlib.util.spec_from_file_location("torch_twins", TORCH_TWINS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def twin_of(model_name: str) -> tuple[str | None, str | None]:
    """(the twin's description, None) or (None, why there is none)."""
    registry = twin_registry()
    if registry is None:
        return None, f"no {TORCH_TWINS} (the PyTorch twins live in a clone of the repository)"
    if model_name not in registry.TWINS:
        return None, registry.describe(model_name)
    return registry.describe(model_name), None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()] or ["no output"]
    line = lines[-1]
    return line if len(line) <= 160 else line[:157] + "..."


def torch_row(model_name: str, mode: str, **fields) -> dict:
    return {"model": model_name, "loop": mode, "case": "torch", "device": "cpu", "members_per_program": 1,
            "programs": 1, **fields}


def measure_torch_twin(model_name: str, steps: int, repeats: int = 1, compile: bool = False,
                       timeout: float | None = None, threads: int = 0) -> dict:
    """(d) or (e): benchmarks/torch_train_benchmark.py in its own process (its folder is not a package,
    and torch's threads then never compete with JAX's), `steps` x `repeats` timed steps. Always a row:
    one with `skipped` (the reason, one line) instead of `member_steps_per_s` when it cannot run or
    runs past `timeout` seconds (then its whole process group is killed)."""
    mode = "compile" if compile else "eager"
    twin, reason = twin_of(model_name)
    if twin is None:
        return torch_row(model_name, mode, skipped=reason)
    command = [sys.executable, TORCH_BENCHMARK, "--models", model_name, "--batch-size", str(BATCH),
               "--steps", str(steps * repeats), "--warmup", str(min(TORCH_WARMUP_STEPS, steps)), "--json"]
    command += ["--compile"] if compile else []
    command += ["--threads", str(threads)] if threads > 0 else []
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="ecg_jax_inductor_") as cache:
        env.setdefault("TORCHINDUCTOR_CACHE_DIR", cache)   # a cold torch.compile unless a cache is asked for
        tic = time.perf_counter()
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                cwd=BENCHMARKS_DIR, start_new_session=True)   # its own group: killable whole
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return torch_row(model_name, mode, twin=twin, skipped=f"timeout: not finished in {timeout:g} s",
                             wall_s=time.perf_counter() - tic)
        finally:
            if proc.poll() is None:   # an interrupt or error here: no orphaned compile workers
                _kill_group(proc)
    wall = time.perf_counter() - tic
    if proc.returncode != 0:
        line = _last_line(stderr)
        hint = "; pip install -r benchmarks/requirements.txt" if "No module named 'torch'" in line else ""
        return torch_row(model_name, mode, twin=twin, skipped=f"failed: {line}{hint}", wall_s=wall)
    out = json.loads(stdout)
    r = out["results"][0]
    row = torch_row(model_name, mode, twin=twin, torch=out["torch"], threads=r["threads"], n_params=r["n_params"],
                    member_steps_per_s=r["steps_per_s"], step_ms=r["step_ms"], timed_steps=r["steps"],
                    first_step_s=r.get("first_step_s"), wall_s=wall)
    if compile:
        row["compile_s"] = r["compile_s"]
    return row


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)   # the process group this benchmark started for the twin
    except ProcessLookupError:
        pass
    proc.communicate()


def network_flops(model_name: str, mesh) -> dict:
    """FLOPs from XLA's cost analysis: the compiled eval-mode forward per window (as `ecg-jax summary`),
    and one training step of one member, batch 64 (the lowered host-loop step, as `ecg-jax benchmark-memory`)."""
    model = create_model(model_name)
    x = jax.ShapeDtypeStruct((BATCH, WINDOW, CHANNELS), jnp.float32)
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(x.shape, x.dtype), train=False))
    forward = jax.jit(lambda v, x: model.apply(v, x, train=False)).lower(variables, x).compile()
    s = settings(1, "vmap")
    m = sharding.padded_count(1, mesh)
    state = jax.eval_shape(jax.vmap(make_init_one(model, s)), jax.ShapeDtypeStruct((m,), jnp.int32))
    data = SplitArrays(jax.ShapeDtypeStruct((BATCH, WINDOW, CHANNELS), jnp.float32),
                       jax.ShapeDtypeStruct((3, BATCH, WINDOW, CHANNELS), jnp.float32))
    order = jax.ShapeDtypeStruct((m, 1, BATCH), jnp.int32)
    program = TrainProgram(model, s, mesh, "host", max_shapes=1)
    step = program._step.lower(state, abstract_member_consts(m, 3, CHANNELS, n_decays=1), order, data,
                               jax.ShapeDtypeStruct((), jnp.int32))
    return {"forward_flops_per_window": flops_of(forward) / BATCH, "train_step_flops": flops_of(step) / m}


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


TABLE_HEADER = (f"  {'loop':<5} {'case':<16} {'members':>7} {'programs':>8} {'member-steps/s':>15} {'ms/step':>9} "
                f"{'compile s':>10} {'vs (a)':>7}")


def print_row(r: dict, base: float | None) -> None:
    """One table line; `base` is the loop's one-by-one rate (None for the PyTorch twin)."""
    if r["case"] == "torch":
        label = "(d) PyTorch" if r["loop"] == "eager" else "(e) torch.compile"
        if "skipped" in r:
            print(f"  {'torch':<5} {label:<16}   {r['skipped']}", flush=True)
            return
        compile_s = f"{r['compile_s']:>10.1f}" if "compile_s" in r else f"{'-':>10}"
        print(f"  {'torch':<5} {label:<16} {1:>7} {1:>8} {r['member_steps_per_s']:>15.1f} "
              f"{r['step_ms']:>9.1f} {compile_s}   ({r['threads']} threads)", flush=True)
        return
    flag = "" if r["losses_finite"] else "  (non-finite losses!)"
    pad = r["padded_members"] - r["members_per_program"]
    members = f"{r['members_per_program']}" + (f"+{pad}pad" if pad else "")   # padded copies: computed, not counted
    ratio = f"{r['member_steps_per_s'] / base:>6.2f}x" if base else f"{'-':>7}"
    print(f"  {r['loop']:<5} {CASE_LABELS[r['case']]:<16} {members:>7} {r['programs']:>8} "
          f"{r['member_steps_per_s']:>15.1f} {r['step_ms']:>9.1f} {r['compile_s']:>10.1f} "
          f"{ratio}{flag}", flush=True)


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


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "processor\t: ")) and ":" in line:
                    name = line.split(":", 1)[1].strip()
                    if name and not name.isdigit():
                        return name
    except OSError:
        pass
    import platform
    return platform.processor() or platform.machine() or "unknown CPU"


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def default_mode(auto_loop: str) -> str:
    """The mode training runs with by default: on CPU one member per device per program, programs one
    after another (experiment.CPU_MEMBERS_PER_DEVICE); on an accelerator the members vmapped in one program."""
    return f"{auto_loop}/one-by-one" if jax.default_backend() == "cpu" else f"{auto_loop}/vmap"


def network_summary(name: str, rows: list[dict], flops: dict | None, default: str) -> dict:
    """One network's line of the final table, from its result rows."""
    jax_rows = {f"{r['loop']}/{r['case']}": r for r in rows if r["case"] != "torch"}
    torch_rows = {r["loop"]: r for r in rows if r["case"] == "torch"}

    def jax_mode(mode: str | None) -> dict:
        if mode is None or mode not in jax_rows:
            return {"mode": default if mode is None else mode, "skipped": "not measured (--loops/--cases)"}
        r = jax_rows[mode]
        return {"mode": mode, "member_steps_per_s": r["member_steps_per_s"], "compile_s": r["compile_s"]}

    best = max(jax_rows, key=lambda m: jax_rows[m]["member_steps_per_s"]) if jax_rows else None
    out = {"model": name, "n_params": next((r["n_params"] for r in rows if "n_params" in r), None),
           "jax_default": jax_mode(default), "jax_best": jax_mode(best),
           "torch_eager": torch_rows.get("eager", {"skipped": "off (--notorch)"}),
           "torch_compile": torch_rows.get("compile", {"skipped": "off (--notorch or --notorch_compile)"}),
           **(flops or {})}
    twin = next((r["twin"] for r in rows if r.get("twin")), None)
    out["twin"] = twin
    if flops:
        out["gflop_per_s"] = {k: flops["train_step_flops"] * out[k]["member_steps_per_s"] / 1e9
                              for k in ("jax_default", "jax_best", "torch_eager", "torch_compile")
                              if "member_steps_per_s" in out[k]}
    return out


def _cell(text: str, width: int = 60) -> str:
    """A reason as a table cell: one line, at most `width` characters (the JSON keeps it whole)."""
    text = text if len(text) <= width else text[:width - 3] + "..."
    return text.replace("|", "\\|")


def markdown_table(header: dict, summaries: list[dict]) -> str:
    """The final table, ready for BENCHMARKS.md: machine and command first, then one row per network."""
    h = header
    lines = [f"Training throughput in member-steps/s (one Adam step of one member, batch {BATCH}, window {WINDOW}), "
             f"JAX and the PyTorch twins side by side.",
             "",
             f"- Machine: {h['cpu_model']}, {h['cpu_count']} cores; load average {h['load_average_start']} at the "
             f"start, {h['load_average_end']} at the end; JAX backend {h['backend']} ({h['device_kind']}, "
             f"{h['n_devices']} device(s)); jax {h['jax']}, torch {h.get('torch') or 'n/a'}, "
             f"torch threads {h['torch_threads'] or 'all cores'}.",
             f"- Command: `{h['command']}`",
             f"- JAX: {h['steps']} steps x {h['repeats']} timed epoch(s) per program after a warm-up epoch, "
             f"{h['seeds']} member(s) per case; default mode = what training runs by default here "
             f"({h['default_mode']}); best = the fastest measured loop/case. PyTorch: one member, "
             f"{h['steps'] * h['repeats']} timed steps after min({TORCH_WARMUP_STEPS}, steps) warm-up; "
             f"torch.compile limited to {h['torch_compile_timeout']} s per network.",
             "- Compile s: first call minus a steady epoch (JAX, default / best mode) or step (torch.compile); "
             "never in a rate. MFLOP/window: eval-mode forward (XLA cost analysis, as `ecg-jax summary`). "
             "GFLOP/s: XLA's FLOPs of one JAX training step x the rate (the twins compute the same FLOPs).",
             "",
             "| network | params | MFLOP/window | JAX default | JAX best | JAX compile s | PyTorch eager | "
             "torch.compile | torch.compile s | GFLOP/s JAX best / eager / compile |",
             "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]

    def rate(entry: dict, mode: bool = False) -> str:
        if "member_steps_per_s" not in entry:
            return _cell(entry.get("skipped", "—"))
        return f"{entry['member_steps_per_s']:.1f}" + (f" ({entry['mode']})" if mode else "")

    def seconds(entry: dict) -> str:
        return f"{entry['compile_s']:.1f}" if "compile_s" in entry and "member_steps_per_s" in entry else "—"

    for s in summaries:
        g = s.get("gflop_per_s", {})
        gflops = " / ".join(f"{g[k]:.2f}" if k in g else "—" for k in ("jax_best", "torch_eager", "torch_compile"))
        eager, compiled = s["torch_eager"], s["torch_compile"]
        if s["twin"] is None and "no PyTorch twin" in eager.get("skipped", ""):
            eager, compiled = {"skipped": "no PyTorch twin"}, {"skipped": "—"}
        mflops = f"{s['forward_flops_per_window'] / 1e6:.1f}" if "forward_flops_per_window" in s else "—"
        params = f"{s['n_params']:,}" if s["n_params"] else "—"
        lines.append(f"| {s['model']} | {params} | {mflops} | {rate(s['jax_default'], True)} | "
                     f"{rate(s['jax_best'], True)} | {seconds(s['jax_default'])} / {seconds(s['jax_best'])} | "
                     f"{rate(eager)} | {rate(compiled)} | {seconds(compiled)} | {gflops} |")
    return "\n".join(lines)


def main(argv):
    if len(argv) > 1:
        raise ConfigError(f"unexpected arguments: {' '.join(argv[1:])}")
    steps, repeats, seeds = _STEPS.value, _REPEATS.value, _SEEDS.value
    if min(steps, repeats, seeds) < 1:
        raise ConfigError("--steps, --repeats and --seeds must be >= 1")
    if _TORCH_COMPILE_TIMEOUT.value < 1:
        raise ConfigError("--torch_compile_timeout must be >= 1 (seconds)")
    loops = list(dict.fromkeys(resolve_loop(x) for x in (_LOOPS.value or ["auto"])))
    if any(loop not in LOOPS for loop in loops):
        raise ConfigError(f"--loops takes {', '.join(LOOPS)} or auto, got {','.join(_LOOPS.value)}")
    cases = list(dict.fromkeys(_CASES.value))
    if not cases or any(c not in CASES for c in cases):
        raise ConfigError(f"--cases takes {','.join(CASES)}, got {','.join(_CASES.value) or 'nothing'}")
    models = list(dict.fromkeys(n for m in _MODELS.value for n in (MODEL_NAMES if m == "all" else (m,))))

    mesh = sharding.member_mesh()
    auto_loop = resolve_loop("auto")
    header = {"backend": jax.default_backend(), "device_kind": jax.devices()[0].device_kind,
              "n_devices": len(jax.devices()), "cpu_count": os.cpu_count(), "cpu_model": cpu_model(),
              "load_average_start": load_average(), "jax": jax.__version__,
              "command": " ".join([sys.argv[0]] + [shlex.quote(a) for a in sys.argv[1:]]),
              "batch": BATCH, "window": WINDOW, "steps": steps, "repeats": repeats, "seeds": seeds,
              "loops": loops, "cases": cases, "auto_loop": auto_loop, "default_mode": default_mode(auto_loop),
              "models": models, "torch": None, "torch_threads": _TORCH_THREADS.value,
              "torch_compile_timeout": _TORCH_COMPILE_TIMEOUT.value}
    print(f"{header['cpu_model']}, {header['cpu_count']} CPU cores, load average {header['load_average_start']}; "
          f"backend {header['backend']}, device kind {header['device_kind']}, {header['n_devices']} device(s), "
          f"jax {header['jax']}")
    print(f"batch {BATCH}, window {WINDOW}; {steps} steps/epoch, {repeats} timed epoch(s) per program after 1 "
          f"warm-up; {seeds} members per case; loops {','.join(loops)} (auto here: {auto_loop}); "
          f"cases {','.join(cases)}")

    data = sharding.put_replicated(host_problem(steps), mesh)
    results, ratios, best, summaries = [], {}, {}, []

    def save(complete: bool) -> None:   # after every case, so a run stopped early keeps what it measured
        if _JSON.value:
            write_json(_JSON.value, {**header, "results": results, "ratios": ratios, "best": best,
                                     "networks": summaries, "predictions": predictions(best),
                                     "complete": complete})

    for name in models:
        ratios[name] = {}
        first = len(results)
        for loop in loops:
            base = None
            for case in cases:
                r = measure(name, loop, case, seeds, steps, repeats, mesh, data)
                if len(results) == first:
                    print(f"\n{name} ({r['n_params']:,} parameters)\n{TABLE_HEADER}")
                if case == "one-by-one":
                    base = r["member_steps_per_s"]
                elif base:
                    ratios[name][f"{loop}/{case}_vs_one-by-one"] = r["member_steps_per_s"] / base
                print_row(r, base)
                results.append(r)
                if r["member_steps_per_s"] > best.get(name, {}).get("member_steps_per_s", 0.0):
                    best[name] = {"mode": f"{loop}/{case}", "member_steps_per_s": r["member_steps_per_s"]}
                save(False)
        flops = network_flops(name, mesh)
        print(f"  forward {flops['forward_flops_per_window'] / 1e6:.1f} MFLOP/window, training step "
              f"{flops['train_step_flops'] / 1e9:.2f} GFLOP (batch {BATCH}, XLA cost analysis)", flush=True)
        for use_compile, wanted in ((False, _TORCH.value), (True, _TORCH.value and _TORCH_COMPILE.value)):
            if not wanted:
                continue
            twin = measure_torch_twin(name, steps, repeats, compile=use_compile,
                                      timeout=_TORCH_COMPILE_TIMEOUT.value if use_compile else None,
                                      threads=_TORCH_THREADS.value)
            header["torch"] = header["torch"] or twin.get("torch")
            print_row(twin, None)
            results.append(twin)
            save(False)
        for loop in loops:
            shown = [f"{case}/one-by-one {ratios[name][f'{loop}/{case}_vs_one-by-one']:.2f}x"
                     for case in ("vmap", "map") if f"{loop}/{case}_vs_one-by-one" in ratios[name]]
            if shown:
                print(f"  {loop}: {', '.join(shown)} ({seeds} members each)")
        summaries.append(network_summary(name, results[first:], flops, header["default_mode"]))
        save(False)
    pred = predictions(best)
    print_predictions(pred)
    header["load_average_end"] = load_average()
    table = markdown_table(header, summaries)
    header["markdown"] = table
    print(f"\n{table}")
    save(True)
    if _MARKDOWN.value:
        write_text_atomic(_MARKDOWN.value, table + "\n")
        print(f"\nwrote {_MARKDOWN.value}")
    if _JSON.value:
        print(f"\nwrote {_JSON.value}")
