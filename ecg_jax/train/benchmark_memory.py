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
    state_of = lambda m: jax.eval_shape(jax.vmap(make_init_one(model, s)), jax.ShapeDtypeStruct((m,), jnp.int32))
    out = {"network": name, "window": window, "batch_size": batch, "train_windows": n_train, "memory": {}}
    program = TrainProgram(model, s, mesh, "scan", max_shapes=len(sizes))
    for m in sizes:
        tic = time.perf_counter()
        mem = program.memory_analysis(state_of(m), abstract_member_consts(m, 3), data)
        mem["compile_s"] = round(time.perf_counter() - tic, 1)
        out["memory"][str(m)] = mem
        log(f"{name}: {m} member(s): peak {mem['peak_bytes'] / 1e6:.1f} MB, temp {mem['temp_size_in_bytes'] / 1e6:.1f} MB "
            f"({mem['compile_s']:.0f}s)")
    host = TrainProgram(model, s, mesh, "host", max_shapes=1)
    state = state_of(1)
    order = jax.ShapeDtypeStruct((1, s.steps_per_epoch, batch), jnp.int32)
    cost = host._step.lower(state, abstract_member_consts(1, 3), order, data,
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
# Member-steps of each grid (protocol.md): paper: 9 networks (6 + CIADNet's 3 ablation variants) x 10 seeds x
# 20 datasets x 100 epochs x 125 steps; final: 6 networks x 20 datasets + 5 DANCE variants x 5 (emb) datasets,
# one seed, 80 epochs x 125 steps.
GRIDS = {"paper": 9 * 10 * 20 * 100 * 125, "final": (6 * 20 + 5 * 5) * 80 * 125}


def roofline(flops: float, bytes_accessed: float, compute_utilisation: float, memory_utilisation: float) -> dict:
    """Seconds per member-step on each HARDWARE entry: max(compute, memory) time at the stated utilisations."""
    out = {}
    for name, hw in HARDWARE.items():
        for precision in ("highest", "default"):
            compute = flops / (hw[precision] * hw["chips"] * compute_utilisation)
            memory = bytes_accessed / (hw["bandwidth"] * hw["chips"] * memory_utilisation)
            out[f"{name}, {precision}"] = max(compute, memory)
    return out
