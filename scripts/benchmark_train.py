"""Training throughput, measured side by side in one run (member-steps per second).

For each network (U-Net and DANCER by default):
  (a) one seed alone                     one-member program
  (b) 10 seeds one after another         the one-member program run 10 times
  (c) 10 seeds in one program            each execution mode of --modes (runner.py)
  (d) the 20-dataset x 10-seed grid      200 members in one program (first mode)
  (e) PyTorch eager twin                 benchmarks/torch_models.py (if torch is installed)
A member-step is one optimisation step (batch 64, window 256) of one member,
so the numbers compare directly. Compile time is reported separately and never
counted in a throughput. Ratios printed: (c)/(b), (d)/(b) and JAX (a)/(e).

  python scripts/benchmark_train.py                        # all cases, both networks
  python scripts/benchmark_train.py --models dancer --no-grid --steps 20 --json out.json

Random normalised data of the protocol's shapes are used: throughput does not
depend on the values. Targets live in BENCHMARKS.md, not in tests.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from ecg_jax.cli import run_main  # noqa: E402
from ecg_jax.models import create_model  # noqa: E402
from ecg_jax.train import engine, sharding  # noqa: E402
from ecg_jax.train.device_data import MemberConsts, SplitArrays  # noqa: E402
from ecg_jax.train.loop import resolve_loop, resolve_parallelism  # noqa: E402
from ecg_jax.train.runner import MemberRunner  # noqa: E402

_MODELS = flags.DEFINE_list("models", ["unet", "dancer"], "Networks to measure.")
_STEPS = flags.DEFINE_integer("steps", 10, "Optimisation steps per timed epoch.")
_REPEATS = flags.DEFINE_integer("repeats", 2, "Timed epochs per case (after one compile+warm-up epoch).")
_SEEDS = flags.DEFINE_integer("seeds", 10, "Seeds for cases (b), (c), (d).")
_DATASETS = flags.DEFINE_integer("datasets", 20, "Datasets for the grid case (d).")
_GRID = flags.DEFINE_bool("grid", True, "Measure the grid case (d).")
_TORCH = flags.DEFINE_bool("torch", True, "Measure the PyTorch eager twins (e) when torch is installed.")
_MODES = flags.DEFINE_list("modes", None, "Execution modes LOOP-PARALLELISM for (c)/(d), e.g. host-map,scan-vmap; "
                           "default: host-map,host-vmap on CPU, scan-vmap,host-vmap on accelerators.")
_JSON = flags.DEFINE_string("json", None, "Also write all numbers to this JSON file.")
BATCH, WINDOW = 64, 256


def problem(n_members: int, steps: int):
    rng = np.random.default_rng(0)
    n = steps * BATCH
    data = SplitArrays(jnp.asarray(rng.normal(size=(n, WINDOW, 2)), jnp.float32),
                       jnp.asarray(rng.normal(size=(3, n, WINDOW, 2)), jnp.float32))
    consts = MemberConsts(jnp.ones((n_members, 3)), jnp.zeros((n_members,)),
                          jnp.zeros((n_members, 2)), jnp.ones((n_members, 2)))
    return data, consts


def settings(steps: int, mode: str) -> engine.TrainSettings:
    loop, parallelism = mode.split("-")
    return engine.TrainSettings(BATCH, steps, WINDOW, 2, 1e-3, 40, 0.1, parallelism, loop)


def measure(model_name: str, n_members: int, mode: str, steps: int, repeats: int,
            sequential_runs: int = 1) -> dict:
    """Member-steps/s of an `n_members` program; `sequential_runs` programs run back to back."""
    model = create_model(model_name)
    s = settings(steps, mode)
    mesh = sharding.member_mesh()
    n_pad = sharding.padded_count(n_members, mesh)
    data, consts = problem(n_members, steps)
    data = sharding.place_replicated(data, mesh)
    consts = sharding.place_members(sharding.pad_members(consts, n_pad), mesh)
    runner = MemberRunner(model, s, mesh)
    init, epoch = runner.init, runner.epoch

    def keys_for(run):
        seeds = [run * n_members + i for i in range(n_members)]
        return sharding.place_members(sharding.pad_members(engine.member_keys(seeds), n_pad), mesh)

    tic = time.perf_counter()
    state = init(keys_for(0))
    state, losses = epoch(state, consts, data)
    jax.block_until_ready(losses)
    compile_s = time.perf_counter() - tic   # compile + one epoch

    states = [state] + [init(keys_for(r)) for r in range(1, sequential_runs)]
    jax.block_until_ready(states)
    tic = time.perf_counter()
    for _ in range(repeats):
        for r in range(sequential_runs):   # one run after another, as the reference does
            states[r], losses = epoch(states[r], consts, data)
            jax.block_until_ready(losses)
    seconds = time.perf_counter() - tic
    member_steps = repeats * sequential_runs * n_members * steps
    return {"model": model_name, "members": n_members, "sequential_runs": sequential_runs,
            "mode": mode, "member_steps_per_s": member_steps / seconds,
            "step_ms": 1e3 * seconds / (repeats * sequential_runs * steps),
            "compile_plus_first_epoch_s": compile_s}


def measure_torch_twin(model_name: str, steps: int) -> dict | None:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
    try:
        from torch_train_benchmark import measure_torch
    except ImportError as e:
        print(f"(e) skipped for {model_name}: torch not installed ({e}); "
              "pip install -r benchmarks/requirements.txt", file=sys.stderr)
        return None
    r = measure_torch(model_name, batch_size=BATCH, steps=max(steps, 10))
    return {"model": model_name, "members": 1, "mode": f"torch-eager-{r.get('threads')}threads",
            "member_steps_per_s": r["steps_per_s"], "step_ms": r["step_ms"]}


@run_main
def main(argv):
    del argv
    steps, repeats, seeds = _STEPS.value, _REPEATS.value, _SEEDS.value
    print(f"backend {jax.default_backend()}, {len(jax.devices())} device(s): {jax.devices()[0].device_kind}; "
          f"{os.cpu_count()} CPU cores; batch {BATCH}, window {WINDOW}, {steps} steps/epoch, {repeats} timed epochs")
    auto = f"{resolve_loop('auto')}-{resolve_parallelism('auto')}"
    modes = _MODES.value or [auto, "host-vmap"]
    print(f"modes: {', '.join(modes)} (auto on this backend: {auto})")
    results = []
    for name in _MODELS.value:
        rows = {}
        rows["a"] = measure(name, 1, auto, steps, repeats)
        rows["b"] = measure(name, 1, auto, steps, repeats, sequential_runs=seeds)
        for mode in modes:
            rows[f"c-{mode}"] = measure(name, seeds, mode, steps, repeats)
        if _GRID.value:
            rows[f"d-{modes[0]}"] = measure(name, seeds * _DATASETS.value, modes[0], steps, 1)
        if _TORCH.value:
            t = measure_torch_twin(name, steps)
            if t:
                rows["e"] = t
        base = rows["b"]["member_steps_per_s"]
        print(f"\n{name}")
        print(f"  {'case':<22} {'members':>7} {'member-steps/s':>15} {'ms/step':>9} {'compile+1st s':>14} {'vs (b)':>7}")
        for key, r in rows.items():
            label = {"a": "(a) 1 seed", "b": f"(b) {seeds} seeds in a row", "e": "(e) PyTorch eager"}.get(
                key, f"({key[0]}) {r['members']} members {key[2:]}")
            comp = r.get("compile_plus_first_epoch_s")
            print(f"  {label:<22} {r['members']:>7} {r['member_steps_per_s']:>15.1f} {r['step_ms']:>9.1f} "
                  f"{(f'{comp:.1f}' if comp else '-'):>14} {r['member_steps_per_s'] / base:>6.2f}x")
            results.append({"case": key, **r})
        if "e" in rows:
            print(f"  JAX (a) / PyTorch eager per member-step: "
                  f"{rows['a']['member_steps_per_s'] / rows['e']['member_steps_per_s']:.2f}x")
    if _JSON.value:
        with open(_JSON.value, "w") as f:
            json.dump({"backend": jax.default_backend(), "device": jax.devices()[0].device_kind,
                       "n_devices": len(jax.devices()), "cpu_count": os.cpu_count(), "steps": steps,
                       "repeats": repeats, "results": results}, f, indent=1)


if __name__ == "__main__":
    app.run(main)
