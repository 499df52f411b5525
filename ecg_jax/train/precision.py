"""The arithmetic policy of the compiled programs: matmul/convolution precision, and an emulation switch.

`train.precision` ("highest" | "high" | "default") is JAX's
`default_matmul_precision` while a program is traced, so it reaches every
convolution and matrix product of the training, evaluation and init programs
(the network's, and the noise mixing's contraction):

  highest  float32 inputs and products everywhere (TPU: 6 bfloat16 passes; GPU: no TF32).
  high     TPU: 3 bfloat16 passes (about float32); GPU: TF32 allowed.
  default  TPU: one bfloat16 pass (inputs rounded to 8-bit mantissas); GPU: TF32 on Ampere and later.

XLA:CPU computes every float32 convolution and product the same way whatever
the precision says, so on a CPU the three settings give the same bits
(tests/test_precision.py). To measure what the cheaper settings cost in
fidelity without an accelerator, `train.conv_input_rounding` rounds the inputs
of every convolution and matrix product of a program (forward and backward,
as the hardware does) before a float32 operation:

  none      as is
  bfloat16  to 8 significant bits, round to nearest even: a TPU at precision "default"
  tf32      to 11 significant bits (10 stored), round to nearest even: an NVIDIA GPU in TF32

It is an emulation for CPUs: the rounding is extra elementwise work, not the
accelerator's faster arithmetic. The rewrite works on the traced program
(`with_policy`), so it covers every network without touching its code.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend import core as jcore

PRECISIONS = ("highest", "high", "default")
INPUT_ROUNDINGS = ("none", "bfloat16", "tf32")
# float32 for every product: the reference trained in PyTorch float32, and the
# comparison with its published numbers is the point of this project.
DEFAULT_PRECISION = "highest"
DEFAULT_INPUT_ROUNDING = "none"

# Significant bits kept (the implicit leading bit included).
_MANTISSA_BITS = {"bfloat16": 8, "tf32": 11}
_ROUNDED_PRIMITIVES = ("conv_general_dilated", "dot_general")
# Call-like primitives whose body is evaluated in place (the program is already
# differentiated when it is rewritten, so custom derivative rules are not needed).
_INLINED = {"pjit": "jaxpr", "jit": "jaxpr", "closed_call": "call_jaxpr", "core_call": "call_jaxpr",
            "remat": "jaxpr", "checkpoint": "jaxpr", "custom_jvp_call": "call_jaxpr",
            "custom_vjp_call": "call_jaxpr", "custom_vjp_call_jaxpr": "fun_jaxpr"}
# Control flow whose bodies are rewritten and the primitive bound again.
_BODIES = {"scan": ("jaxpr",), "while": ("cond_jaxpr", "body_jaxpr"), "cond": ("branches",)}


def round_mantissa(x: jax.Array, bits: int) -> jax.Array:
    """float32 `x` rounded to `bits` significant bits, to nearest (ties to even); inf/nan kept."""
    if x.dtype != jnp.float32:
        return x
    drop = 24 - bits
    u = lax.bitcast_convert_type(x, jnp.uint32)
    lsb = (u >> np.uint32(drop)) & np.uint32(1)
    rounded = (u + (np.uint32((1 << (drop - 1)) - 1) + lsb)) & np.uint32(~((1 << drop) - 1) & 0xFFFFFFFF)
    finite = jnp.isfinite(x)
    return jnp.where(finite, lax.bitcast_convert_type(rounded, jnp.float32), x)


def check_policy(precision: str, rounding: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if rounding not in INPUT_ROUNDINGS:
        raise ValueError(f"conv_input_rounding must be one of {INPUT_ROUNDINGS}, got {rounding!r}")


def with_policy(fn: Callable, precision: str = DEFAULT_PRECISION,
                rounding: str = DEFAULT_INPUT_ROUNDING) -> Callable:
    """`fn` traced under `default_matmul_precision(precision)`, its product inputs rounded per `rounding`.

    Apply it to what is traced once (a function given to `jit`/`shard_map`):
    the precision holds while `fn` is traced, whatever the caller's context.
    """
    check_policy(precision, rounding)

    def wrapped(*args):
        with jax.default_matmul_precision(precision):
            if rounding == "none":
                return fn(*args)
            closed, out_shape = jax.make_jaxpr(fn, return_shape=True)(*args)
            outs = _eval(closed.jaxpr, closed.consts, jax.tree_util.tree_leaves(args), _MANTISSA_BITS[rounding])
            return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(out_shape), outs)

    wrapped.__name__ = getattr(fn, "__name__", "program")
    return wrapped


def _eval(jaxpr, consts, args, bits: int) -> list:
    """Evaluate `jaxpr` with the inputs of its convolutions and products rounded to `bits`."""
    env: dict = {}

    def read(v):
        return v.val if isinstance(v, jcore.Literal) else env[v]

    for v, x in zip(jaxpr.constvars, consts, strict=True):
        env[v] = x
    for v, x in zip(jaxpr.invars, args, strict=True):
        env[v] = x
    for eqn in jaxpr.eqns:
        invals = [read(v) for v in eqn.invars]
        name = eqn.primitive.name
        if name in _ROUNDED_PRIMITIVES:
            outs = eqn.primitive.bind(*(round_mantissa(x, bits) for x in invals), **eqn.params)
        elif name in _INLINED and _INLINED[name] in eqn.params:
            body = eqn.params[_INLINED[name]]
            if isinstance(body, jcore.ClosedJaxpr):
                outs = _eval(body.jaxpr, body.consts, invals, bits)
            else:
                outs = _eval(body, (), invals, bits)
        elif name in _BODIES:
            params = dict(eqn.params)
            for key in _BODIES[name]:
                value = params[key]
                params[key] = (tuple(_rewrite(b, bits) for b in value) if isinstance(value, tuple)
                               else _rewrite(value, bits))
            outs = eqn.primitive.bind(*invals, **params)
        elif any(_holds_jaxpr(p) for p in eqn.params.values()):
            raise NotImplementedError(f"conv_input_rounding: cannot rewrite inside primitive {name!r}")
        else:
            outs = eqn.primitive.bind(*invals, **eqn.params)
        if not eqn.primitive.multiple_results:
            outs = [outs]
        for v, x in zip(eqn.outvars, outs, strict=True):
            env[v] = x
    return [read(v) for v in jaxpr.outvars]


def _rewrite(closed, bits: int):
    """A ClosedJaxpr with the same signature, its product inputs rounded.

    Traced from the body's own avals, as JAX's control flow traces its bodies
    (internal API: inside shard_map an aval also says over which manual axes
    it varies, which public tracing entry points cannot take).
    """
    from jax._src import api_util
    from jax._src import core as jax_core
    from jax._src import linear_util as lu
    from jax._src.interpreters import partial_eval as pe

    def fn(*a):
        return _eval(closed.jaxpr, closed.consts, list(a), bits)
    debug = api_util.debug_info("conv_input_rounding", fn, closed.in_avals, {})
    jaxpr, out_avals, consts = pe.trace_to_jaxpr_dynamic(lu.wrap_init(fn, debug_info=debug), closed.in_avals)
    if [a.strip_weak_type() for a in out_avals] != [a.strip_weak_type() for a in closed.out_avals]:
        raise NotImplementedError("conv_input_rounding: a rewritten body changed its output types")
    return jax_core.ClosedJaxpr(jaxpr, consts)


def _holds_jaxpr(value: Any) -> bool:
    if isinstance(value, (tuple, list)):
        return any(_holds_jaxpr(v) for v in value)
    return isinstance(value, (jcore.ClosedJaxpr, jcore.Jaxpr))


def precision_fields(settings) -> dict:
    """What a results row records of the policy: `precision`, and `conv_input_rounding` when emulated."""
    fields = {"precision": settings.precision}
    if settings.conv_input_rounding != DEFAULT_INPUT_ROUNDING:
        fields["conv_input_rounding"] = settings.conv_input_rounding
    return fields
