"""Compiled equals intended: every registered network's jitted train step and
evaluation forward against the same functions run op by op (`jax.disable_jit`).

Run as a script (by tests/test_jit_guard.py, in a fresh process, so that
XLA_FLAGS such as `--xla_cpu_max_isa=AVX2` take effect before JAX starts):

    python tests/jit_guard.py OUT.pkl NAME[:eager] [...]

writes each network's compiled results (and, for NAME:eager, its op-by-op
ones) to OUT.pkl; `gaps` gives the largest difference of each compared tree
relative to that tree's largest entry. Everything runs in float64, where
the two paths differ by summation order only (~1e-15), so a compiler rewrite
that changes the function stands out by many orders of magnitude (the AGS-UNet
max-pool gradient of jax 0.10.2 on XLA:CPU with AVX2 code: 0.2 of the
gradient's largest entry, docs/known-issues.md).

What is compared: one epoch of two steps of `engine.make_member_epoch` (the
function the training program compiles: a shuffle, then a `lax.scan` of the
vmapped step) from the same float64 state, jitted and op by op: the losses,
the new parameters, BatchNorm statistics and Adam state; then the
evaluation-mode output from the epoch's result. Adam's first steps move each
parameter by about lr * sign(gradient), which hides a wrong gradient's size,
but its moments are (1 - b1) * gradient and (1 - b2) * gradient^2 summed over
the steps, so the gradients themselves are compared through `opt_state`.
"""

from __future__ import annotations

import os
import pickle
import sys

import jax
import jax.numpy as jnp
import numpy as np

from ecg_jax.models import create_model
from ecg_jax.train import engine
from ecg_jax.train.device_data import MemberConsts, SplitArrays

BATCH, LENGTH, N_WINDOWS = 4, 64, 8      # two steps of 4 windows of 64 samples
# RALENet's attention is far costlier op by op; a smaller batch keeps it to seconds.
SMALL_BATCH = {"ralenet": 2}


def _problem(batch: int):
    rng = np.random.default_rng(0)
    data = SplitArrays(rng.normal(size=(N_WINDOWS, LENGTH, 2)), 0.5 * rng.normal(size=(3, N_WINDOWS, LENGTH, 2)))
    consts = MemberConsts(noise_weights=np.array([1.0, 1.0, 1.0]), noise_divisor=np.array(1.0),
                          scale_each=np.array(False), prescaled=np.array(False), snr_db=np.array(-4.0),
                          mean=np.array([0.1, -0.2]), std=np.array([1.3, 0.7]))
    settings = engine.TrainSettings(batch_size=batch, steps_per_epoch=N_WINDOWS // batch, window=LENGTH,
                                    channels=2, learning_rate=1e-3, lr_decay_epoch=1, lr_decay_factor=0.1)
    def to64(tree):
        return jax.tree_util.tree_map(
            lambda a: jnp.asarray(a, jnp.float64) if np.asarray(a).dtype.kind == "f" else jnp.asarray(a), tree)
    return to64(data), to64(consts), settings


def _float64_state(state: engine.MemberState) -> engine.MemberState:
    def cast(a):
        return a.astype(jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating) else a
    return state._replace(params=jax.tree_util.tree_map(cast, state.params),
                          batch_stats=jax.tree_util.tree_map(cast, state.batch_stats),
                          opt_state=jax.tree_util.tree_map(cast, state.opt_state))


def _relative_gap(got, want) -> float:
    """max |got - want| over a tree, over max |want| (0 for a tree with nothing to compare)."""
    pairs = list(zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True))
    floats = [(np.asarray(g), np.asarray(w)) for g, w in pairs if np.asarray(w).dtype.kind == "f"]
    if not floats:
        return 0.0
    scale = max(float(np.max(np.abs(w))) for _, w in floats) or 1.0
    return max(float(np.max(np.abs(g - w))) for g, w in floats) / scale


TREES = ("losses", "params", "batch_stats", "opt_state", "eval_output")


def run(name: str, eager: bool) -> dict[str, dict]:
    """{"jitted": trees, "eager": trees or absent} of one network: the epoch's losses, parameters,
    BatchNorm statistics and Adam state, and the evaluation output, as host arrays."""
    batch = SMALL_BATCH.get(name, BATCH)
    data, consts, settings = _problem(batch)
    model = create_model(name)
    # Initialised in float32 as training does, then every float promoted to float64.
    with jax.enable_x64(False):
        state = jax.jit(engine.make_init_one(model, settings))(np.int32(0))
    def one_member(tree):
        return jax.tree_util.tree_map(lambda a: jnp.asarray(a)[None], tree)
    state, consts = one_member(_float64_state(jax.device_get(state))), one_member(consts)
    # The function the training program compiles: shuffle, then a scan of the vmapped step.
    def epoch(st):
        return engine.make_member_epoch(model, settings)(st, consts, data)
    x = data.clean[:batch] + data.noise[0, :batch]

    def evaluate(st):  # evaluation reads the running statistics the epoch left
        variables = engine.variables_of(*jax.tree_util.tree_map(lambda a: a[0], (st.params, st.batch_stats)))
        return model.apply(variables, x, train=False)

    def trees(new_state, losses, out):
        assert not bool(np.any(new_state.diverged)), f"{name}: the epoch diverged"
        return jax.device_get(dict(zip(TREES, (losses, new_state.params, new_state.batch_stats,
                                                new_state.opt_state, out), strict=True)))

    jitted_state, jitted_losses = jax.jit(epoch)(state)
    found = {"jitted": trees(jitted_state, jitted_losses, jax.jit(evaluate)(jitted_state))}
    if eager:
        with jax.disable_jit():
            eager_state, eager_losses = epoch(state)
            found["eager"] = trees(eager_state, eager_losses, evaluate(jitted_state))
    return found


def gaps(jitted: dict, eager: dict) -> dict[str, float]:
    """Largest difference of each compared tree, relative to its largest entry."""
    return {"loss": _relative_gap(jitted["losses"], eager["losses"]),
            "params": _relative_gap(jitted["params"], eager["params"]),
            "batch_stats": _relative_gap(jitted["batch_stats"], eager["batch_stats"]),
            "Adam state (gradient moments)": _relative_gap(jitted["opt_state"], eager["opt_state"]),
            "eval output": _relative_gap(jitted["eval_output"], eager["eval_output"])}


if __name__ == "__main__":
    # python tests/jit_guard.py OUT.pkl NAME[:eager] ...: each network compiled; with ":eager" also
    # run op by op. The op-by-op runs cost most (every operation compiled on its own), so two
    # processes (two ISAs) can share them; op by op, the ISA changes rounding only (~1e-16).
    jax.config.update("jax_enable_x64", True)
    out_path, specs = sys.argv[1], sys.argv[2:]
    results = {}
    for spec in specs:
        model_name, _, mode = spec.partition(":")
        results[model_name] = run(model_name, eager=mode == "eager")
    with open(out_path + ".tmp", "wb") as f:
        pickle.dump(results, f)
    os.replace(out_path + ".tmp", out_path)
