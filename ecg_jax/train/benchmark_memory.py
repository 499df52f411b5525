"""Per-member compiled memory and XLA's cost analysis of every network's training program, on this machine.

For each network, the default training program (the scanned epoch, protocol
shapes: window 256, batch 64, 8000 training windows, 125 steps) is compiled
for 1, 10 and 100 members on one device, and XLA's memory analysis read:
arguments + outputs - donated + temporaries, per member. From the two largest
sizes, bytes = fixed + per_member x members, which predicts how many members
one program can hold on a device of a given memory (at the planner's
MEMORY_FRACTION). The host loop's step for one member is lowered (not
compiled) for XLA's cost analysis: FLOPs and bytes accessed of one
member-step, before fusion (bytes are an upper bound).

These are XLA:CPU's numbers: GPU and TPU compilers lay out, fuse and pad
differently (TPU pads the minor dimension, here the channels, to 128 lanes),
so the predictions are to be replaced by the same script's numbers on the
accelerator (it runs unchanged there).

JAX and the training code are imported inside the functions that use them
(lazy): the module itself imports without JAX, for the tables' arithmetic
(`markdown`, `roofline`).
"""

from __future__ import annotations

import json
import time
from typing import Callable, Sequence

from ecg_jax.atomic import write_text_atomic

DEVICES = {"H100 80 GB": 80e9, "TPU v5e chip 16 GB": 16e9}


def measure_network(name: str, sizes: Sequence[int], window: int = 256, batch: int = 64,
                    n_train: int = 8000, log: Callable[[str], None] = print) -> dict:
    import jax
    import jax.numpy as jnp

    from ecg_jax.models import create_model
    from ecg_jax.train import sharding
    from ecg_jax.train.device_data import SplitArrays, abstract_member_consts
    from ecg_jax.train.engine import TrainSettings, make_init_one
    from ecg_jax.train.program import TrainProgram

    mesh = sharding.member_mesh(jax.devices()[:1])
    model = create_model(name)
    s = TrainSettings(batch_size=batch, steps_per_epoch=n_train // batch, window=window, channels=2,
                      learning_rate=1e-3, lr_decay_epoch=(40,), lr_decay_factor=(0.1,))
    data = SplitArrays(jax.ShapeDtypeStruct((n_train, window, 2), jnp.float32),
                       jax.ShapeDtypeStruct((3, n_train, window, 2), jnp.float32))
    def state_of(m):
        return jax.eval_shape(jax.vmap(make_init_one(model, s)), jax.ShapeDtypeStruct((m,), jnp.int32))
    out = {"network": name, "window": window, "batch_size": batch, "train_windows": n_train, "memory": {}}
    program = TrainProgram(model, s, mesh, "scan", max_shapes=len(sizes))
    for m in sizes:
        tic = time.perf_counter()
        mem = program.memory_analysis(state_of(m), abstract_member_consts(m, 3, n_decays=1), data)
        mem["compile_s"] = round(time.perf_counter() - tic, 1)
        out["memory"][str(m)] = mem
        log(f"{name}: {m} member(s): peak {mem['peak_bytes'] / 1e6:.1f} MB, "
            f"temp {mem['temp_size_in_bytes'] / 1e6:.1f} MB "
            f"({mem['compile_s']:.0f}s)")
    host = TrainProgram(model, s, mesh, "host", max_shapes=1)
    state = state_of(1)
    order = jax.ShapeDtypeStruct((1, s.steps_per_epoch, batch), jnp.int32)
    cost = host._step.lower(state, abstract_member_consts(1, 3, n_decays=1), order, data,
                            jax.ShapeDtypeStruct((), jnp.int32)).cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    out["member_step"] = {"flops": float(cost.get("flops", 0.0)),
                          "bytes_accessed": float(cost.get("bytes accessed", 0.0))}
    out["n_params"] = sum(int(x.size) for x in jax.tree_util.tree_leaves(state.params))
    out.update(fit(out["memory"]))
    return out


def fit(memory: dict) -> dict:
    """fixed + per_member x m through the two largest sizes, and members per device at MEMORY_FRACTION."""
    from ecg_jax.train.experiment import MEMORY_FRACTION

    sizes = sorted(int(m) for m in memory)
    if len(sizes) < 2:
        return {}
    a, b = sizes[-2], sizes[-1]
    pa, pb = memory[str(a)]["peak_bytes"], memory[str(b)]["peak_bytes"]
    per_member = (pb - pa) / (b - a)
    fixed = pa - per_member * a
    members = {d: int((MEMORY_FRACTION * size - fixed) // per_member) if per_member > 0 else None
               for d, size in DEVICES.items()}
    return {"per_member_bytes": per_member, "fixed_bytes": fixed, "members_per_device": members}


def run(networks: Sequence[str], sizes: Sequence[int], json_path: str | None, log=print) -> list[dict]:
    from ecg_jax.models import create_model

    rows = []
    for name in networks:
        try:
            create_model(name)
        except ImportError as e:
            log(f"{name}: not available ({str(e).splitlines()[0]}) - skipped")
            continue
        rows.append(measure_network(name, sizes, log=log))
        if json_path:   # rewritten after every network: an interrupted run keeps what it measured
            write_text_atomic(json_path, json.dumps(rows, indent=1))
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| network | params | MB/member at 1 / 10 / 100 (args+out-donated+temp) | temp MB/member at 100 | "
             "fixed MB | predicted members per program: H100 80 GB / TPU v5e 16 GB | GFLOP per member-step | "
             "MB accessed per member-step |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mem, cells = r["memory"], ["-"] * 4
        if mem:
            big = max(mem, key=int)
            members = r.get("members_per_device", {})
            cells = [" / ".join(f"{mem[k]['peak_bytes'] / int(k) / 1e6:.1f}" for k in sorted(mem, key=int)),
                     f"{mem[big]['temp_size_in_bytes'] / int(big) / 1e6:.1f}", f"{r.get('fixed_bytes', 0) / 1e6:.0f}",
                     " / ".join(f"{v:,}" for v in members.values()) or "-"]
        lines.append(f"| {r['network']} | {r['n_params']:,} | " + " | ".join(cells) +
                     f" | {r['member_step']['flops'] / 1e9:.2f} | {r['member_step']['bytes_accessed'] / 1e6:.0f} |")
    return "\n".join(lines)


# Roofline inputs (vendor datasheets): peak FLOP/s of the arithmetic each train.precision uses, and HBM bandwidth.
HARDWARE = {
    # H100 SXM: float32 without tensor cores 67 TFLOP/s (precision highest); TF32 tensor cores 495 dense (default).
    "H100 SXM (1 GPU)": {"highest": 67e12, "default": 495e12, "bandwidth": 3.35e12, "chips": 1},
    # TPU v5e: 197 TFLOP/s bfloat16 a chip; float32 at highest is 6 bfloat16 passes; 819 GB/s a chip.
    "TPU v5e-8 (8 chips)": {"highest": 197e12 / 6, "default": 197e12, "bandwidth": 819e9, "chips": 8},
}
# Member-steps of each grid (protocol.md), by the network whose measured cost stands for it. paper: the six
# networks and CIADNet's 3 ablation variants (costed as CIADNet) x 10 seeds x 20 datasets x 100 epochs x 125
# steps; final: the 6 main networks x 20 datasets (the final U-Net, kernels 17,17,7,7, costed as the paper
# U-Net) and DANCE's 5 variants x 5 emb datasets, one seed, 80 epochs x 125 steps.
_PAPER_RUN, _FINAL_RUN = 10 * 20 * 100 * 125, 20 * 80 * 125
GRID_STEPS = {
    "paper": {"unet": _PAPER_RUN, "dacnn": _PAPER_RUN, "acdae": _PAPER_RUN, "ags_unet": _PAPER_RUN,
              "ciadnet": 4 * _PAPER_RUN, "dancer": _PAPER_RUN},
    "final": {"unet": _FINAL_RUN, "drsn": _FINAL_RUN, "dacnn_final": _FINAL_RUN, "acdae_final": _FINAL_RUN,
              "ralenet": _FINAL_RUN, "dance_final": _FINAL_RUN,
              **{f"dance_final_{v}": _FINAL_RUN // 4 for v in ("se", "cbam", "eca", "atnc", "arem")}},
}
GRIDS = {grid: sum(steps.values()) for grid, steps in GRID_STEPS.items()}


def roofline(flops: float, bytes_accessed: float, compute_utilisation: float, memory_utilisation: float) -> dict:
    """Seconds per member-step on each HARDWARE entry: max(compute, memory) time at the stated utilisations."""
    out = {}
    for name, hw in HARDWARE.items():
        for precision in ("highest", "default"):
            compute = flops / (hw[precision] * hw["chips"] * compute_utilisation)
            memory = bytes_accessed / (hw["bandwidth"] * hw["chips"] * memory_utilisation)
            out[f"{name}, {precision}"] = max(compute, memory)
    return out


def grid_prediction(rows: list[dict], compute_utilisation: float = 0.25,
                    memory_utilisation: float = 0.5) -> dict[str, dict[str, tuple[float, float]]]:
    """Predicted wall seconds of each grid on each HARDWARE entry and precision, as (low, high).

    low: every member-step compute-bound (fusion removing most of the traffic XLA's unfused byte count
    implies); high: every member-step at max(compute, memory) with the unfused bytes. `rows` are
    `measure_network` rows (their `member_step` cost); a grid with a network missing from `rows` is left out.
    """
    cost = {r["network"]: r["member_step"] for r in rows}
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for grid, steps in GRID_STEPS.items():
        if not set(steps) <= set(cost):
            continue
        low: dict[str, float] = {}
        high: dict[str, float] = {}
        for network, n in steps.items():
            flops = cost[network]["flops"]
            compute_only = roofline(flops, 0.0, compute_utilisation, memory_utilisation)
            both = roofline(flops, cost[network]["bytes_accessed"], compute_utilisation, memory_utilisation)
            for key in both:
                low[key] = low.get(key, 0.0) + n * compute_only[key]
                high[key] = high.get(key, 0.0) + n * both[key]
        out[grid] = {key: (low[key], high[key]) for key in low}
    return out


def prediction_markdown(rows: list[dict]) -> str:
    """`grid_prediction` as BENCHMARKS.md's table (hours, or minutes under two hours); '' without a whole grid."""
    predicted = grid_prediction(rows)
    if not predicted:
        return ""

    def span(seconds: tuple[float, float]) -> str:
        low, high = seconds
        if high < 7200:
            return f"{low / 60:.0f}-{high / 60:.0f} min"
        return f"{low / 3600:.2f}-{high / 3600:.2f} h"

    grids = list(predicted)
    lines = ["| hardware, train.precision | " + " | ".join(f"{g} grid ({GRIDS[g] / 1e6:.2f} M member-steps)"
                                                          for g in grids) + " |",
             "|---|" + "---|" * len(grids)]
    for key in predicted[grids[0]]:
        lines.append(f"| {key} | " + " | ".join(span(predicted[g][key]) for g in grids) + " |")
    return "\n".join(lines)
