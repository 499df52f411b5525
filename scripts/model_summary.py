"""Print one row per network: parameters (vs models.md), FLOPs, output shape, forward time.

    python scripts/model_summary.py
    python scripts/model_summary.py --models=unet,ciadnet --batch=64 --length=256

Selecting `ciadnet` also lists its three ablation variants. FLOPs are XLA's
cost analysis of the compiled eval-mode forward pass, divided by the batch
size (per window). Time is the mean wall time of one jitted eval-mode forward
pass of a whole batch, after warm-up. Variables are filled with placeholder
values of the right shapes (compiling the random initialiser of every network
would take longer than the whole summary, and neither cost nor speed depends
on the values).
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from ecg_jax.cli import run_main  # noqa: E402
from ecg_jax.config_utils import as_list  # noqa: E402
from ecg_jax.errors import ConfigError  # noqa: E402
from ecg_jax.models import (DISPLAY_NAMES, MODEL_NAMES, count_params, create_model,  # noqa: E402
                            reference_param_count)

FLAGS = flags.FLAGS
flags.DEFINE_string("models", ",".join(MODEL_NAMES), "Comma-separated model names.")
flags.DEFINE_integer("batch", 64, "Windows per forward pass (FLOPs are reported per window).")
flags.DEFINE_integer("length", 256, "Window length in samples (divisible by 16).")
flags.DEFINE_integer("repeats", 20, "Timed forward passes after warm-up.")

CIADNET_VARIANTS = (
    ("CIADNet", {}),
    ("CIADNet (channel only)", {"channel_shrink": True, "spatial_shrink": False}),
    ("CIADNet (spatial only)", {"channel_shrink": False, "spatial_shrink": True}),
    ("CIADNet (neither)", {"channel_shrink": False, "spatial_shrink": False}),
)


def configurations(names: list[str]) -> list[tuple[str, str, dict]]:
    """(label, name, overrides) rows; `ciadnet` expands to its four variants."""
    rows = []
    for name in names:
        if name == "ciadnet":
            rows += [(label, name, overrides) for label, overrides in CIADNET_VARIANTS]
        else:
            rows.append((DISPLAY_NAMES.get(name, name), name, {}))
    return rows


def placeholder_variables(shapes, seed: int = 0):
    """Small random values for every variable; BatchNorm running variances are 1."""
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        if path[-1].key == "var":
            return np.ones(leaf.shape, np.float32)
        return rng.uniform(-0.05, 0.05, leaf.shape).astype(np.float32)

    return jax.tree_util.tree_map_with_path(fill, shapes)


def flops_of(compiled) -> float:
    """Total FLOPs from XLA's cost analysis (a dict, or a one-element list in older JAX)."""
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else {}
    return float(cost.get("flops", float("nan"))) if cost else float("nan")


def summarise(name: str, overrides: dict, batch: int, length: int, repeats: int) -> dict:
    model = create_model(name, **overrides)
    x = jnp.asarray(np.random.default_rng(1).normal(size=(batch, length, 2)), jnp.float32)
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
    variables = placeholder_variables(shapes)
    forward = jax.jit(lambda v, x: model.apply(v, x, train=False))
    compiled = forward.lower(variables, x).compile()
    out = compiled(variables, x)
    out.block_until_ready()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        out = compiled(variables, x)
    out.block_until_ready()
    seconds = (time.perf_counter() - start) / repeats
    params = count_params(shapes["params"])
    reference = reference_param_count(name, **overrides)
    return {"params": params, "reference": reference, "match": params == reference,
            "flops_per_window": flops_of(compiled) / batch,
            "output_shape": tuple(out.shape), "ms_per_batch": 1e3 * seconds}


def format_table(rows: list[tuple[str, dict]], batch: int, length: int) -> str:
    header = ("network", "params", "models.md", "match", "MFLOPs/window",
              "output shape", f"ms/forward (batch {batch})")
    lines = [header]
    for label, r in rows:
        lines.append((label, f"{r['params']:,}", f"{r['reference']:,}",
                      "yes" if r["match"] else "NO", f"{r['flops_per_window'] / 1e6:.2f}",
                      "x".join(map(str, r["output_shape"])), f"{r['ms_per_batch']:.2f}"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [f"Window length {length}, eval mode, {jax.default_backend()} backend"]
    for n, line in enumerate(lines):
        text.append("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())
        if n == 0:
            text.append("  ".join("-" * w for w in widths))
    return "\n".join(text)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise ConfigError(f"unexpected arguments: {' '.join(argv[1:])}")
    names = as_list(FLAGS.models)
    if FLAGS.batch < 1 or FLAGS.repeats < 1:
        raise ConfigError("--batch and --repeats must be positive")
    if FLAGS.length < 16 or FLAGS.length % 16:
        raise ConfigError(f"--length must be a positive multiple of 16, got {FLAGS.length}")
    for name in names:
        create_model(name)  # fail fast on an unknown name, before any compiling
    rows = []
    for label, name, overrides in configurations(names):
        rows.append((label, summarise(name, overrides, FLAGS.batch, FLAGS.length, FLAGS.repeats)))
        print(f"measured {label}", file=sys.stderr, flush=True)
    print(format_table(rows, FLAGS.batch, FLAGS.length))


if __name__ == "__main__":
    app.run(run_main(main))
