"""One row per network: parameters (vs models.md), FLOPs, output shape, forward time.

    print(summarise_models(["unet", "ciadnet"], batch=64, length=256, repeats=20))

Selecting `ciadnet` also lists its three ablation variants. FLOPs: XLA's cost
analysis of the compiled eval-mode forward pass, per window. Time: mean wall
time of one jitted eval-mode forward pass of a batch, after warm-up, on
placeholder variables of the right shapes (compiling every network's random
initialiser would take longer than the whole summary; neither cost nor speed
depends on the values). Used by scripts/model_summary.py. An external network
(`--models=my_net.py:MyNet`, ecg_jax/models/external.py) has no models.md count: "—".
"""

from __future__ import annotations

import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from ecg_jax.errors import ConfigError
from ecg_jax.models import (
    REFERENCE_PARAM_COUNTS,
    UNAVAILABLE_MODELS,
    check_model,
    count_params,
    create_model,
    display_name_of,
    reference_param_count,
)

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
            rows.append((display_name_of(name), name, {}))
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
    return {"params": params, "reference": reference, "match": None if reference is None else params == reference,
            "flops_per_window": flops_of(compiled) / batch,
            "output_shape": tuple(out.shape), "ms_per_batch": 1e3 * seconds}


def format_table(rows: list[tuple[str, dict]], batch: int, length: int) -> str:
    header = ("network", "params", "models.md", "match", "MFLOPs/window",
              "output shape", f"ms/forward (batch {batch})")
    lines = [header]
    for label, r in rows:
        if r.get("not_built"):   # ecg_jax.models.UNAVAILABLE_MODELS says why
            lines.append((label, "—", f"{r['reference']:,}", "not built", "—", "—", "—"))
            continue
        reference, match = ("—", "—") if r["reference"] is None else (f"{r['reference']:,}",
                                                                        "yes" if r["match"] else "NO")
        lines.append((label, f"{r['params']:,}", reference, match, f"{r['flops_per_window'] / 1e6:.2f}",
                      "x".join(map(str, r["output_shape"])), f"{r['ms_per_batch']:.2f}"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [f"Window length {length}, eval mode, {jax.default_backend()} backend"]
    if any(r.get("not_built") for _, r in rows):
        text.append("not built: the network's reference source is missing (ecg_jax.models.UNAVAILABLE_MODELS)")
    for n, line in enumerate(lines):
        text.append("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
        if n == 0:
            text.append("  ".join("-" * w for w in widths))
    return "\n".join(text)


def summarise_models(names: list[str], batch: int, length: int, repeats: int) -> str:
    """Measure every configuration of `names` (logging "measured LABEL" to stderr as each
    finishes) and return the table. ConfigError, before any compiling, on bad arguments."""
    if batch < 1 or repeats < 1:
        raise ConfigError("--batch and --repeats must be positive")
    if length < 16 or length % 16:
        raise ConfigError(f"--length must be a positive multiple of 16, got {length}")
    for name in names:
        if name not in UNAVAILABLE_MODELS:
            check_model(name, create_model(name), length)  # fail fast on an unknown name or a broken contract
    rows = []
    for label, name, overrides in configurations(names):
        if name in UNAVAILABLE_MODELS:
            rows.append((label, {"reference": REFERENCE_PARAM_COUNTS[name], "not_built": True}))
            continue
        rows.append((label, summarise(name, overrides, batch, length, repeats)))
        print(f"measured {label}", file=sys.stderr, flush=True)
    return format_table(rows, batch, length)
