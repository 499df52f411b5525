"""The compiled training program: one lifted, donated, sharded step per chunk shape.

`TrainProgram` jit-compiles the member-lifted functions of engine.py, each
wrapped in `shard_map` over the 1-D member mesh (sharding.py), with
`NamedSharding` in/out shardings and the state donated, so a chunk needs its
state in memory once. The same code runs on one device (a mesh of one), on N
devices and on N processes.

An epoch is run in one of two ways over the same lifted step
(`engine.make_member_step`):

  loop="scan"  one compiled call per epoch: shuffle, then `lax.scan` over the
               steps. No host round-trip inside an epoch. The default
               everywhere (`train.loop=auto`).
  loop="host"  the compiled step called once per step from Python; the
               state, data and batch order stay on the devices and the host
               reads the losses once per epoch.

Both compute the same bits on CPU (tests/test_train_loop.py). That holds
because the convolutions' gradients are written in the layout XLA:CPU gives
its Eigen kernels (models/layers.py, `conv1d`): otherwise XLA:CPU leaves them
as generic loop nests inside loop bodies (`while`, hence `scan` and
`lax.map`), 15-30x slower than at the top level of a program and rounded
differently (jax-ml/jax#12868). Measured side by side in one run, the scan is
1.4-1.5x the host loop's speed on CPU (BENCHMARKS.md, "scan vs host on CPU");
the host loop stays as a switch and in the tests.

Each program is traced once per chunk shape; `guarded` (chex's
`assert_max_traces` contract, counted per program) turns a silent retrace (a
changed dtype, a Python scalar where an array was expected) into an error.
"""

from __future__ import annotations

import functools
import os
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ecg_jax.train import sharding
from ecg_jax.train.device_data import MemberConsts, SplitArrays
from ecg_jax.train.engine import (
    MemberState,
    TrainSettings,
    make_init_one,
    make_member_epoch,
    make_member_step,
    make_shuffle_one,
    over_members,
)
from ecg_jax.train.precision import with_policy

LOOPS = ("scan", "host")


class RetraceError(AssertionError):
    pass


def guarded(fn: Callable, max_traces: int) -> Callable:
    """`fn`, failing loudly if it is traced more often than there are chunk shapes.

    The same contract as `chex.assert_max_traces`, but counted per program
    object: chex keys its counter on the definition site, which every program
    built in one process shares (reproduce.py builds one per network, and each
    network legitimately traces its own shapes).
    """
    traces = 0

    @functools.wraps(fn)
    def wrapped(*args):
        nonlocal traces
        traces += 1   # runs only while jit traces: once per new input shape/dtype/sharding
        if traces > max_traces:
            raise RetraceError(f"{getattr(fn, '__name__', fn)} traced {traces} times (at most {max_traces} "
                               "expected): an argument changed shape, dtype or sharding between calls")
        return fn(*args)

    return wrapped


class TrainProgram:
    """`init(seeds)` and `epoch(state, consts, data)` of one network over member-sharded chunks.

    `seeds`, `consts` and `state` are member-leading global arrays sharded over
    `mesh`; `data` is replicated. `epoch` returns the new state and the
    per-step losses (members, steps), still on the devices.
    """

    def __init__(self, model: nn.Module, settings: TrainSettings, mesh, loop: str, max_shapes: int = 2):
        if loop not in LOOPS:
            raise ValueError(f"loop must be one of {LOOPS}, got {loop!r}")
        self.settings, self.mesh, self.loop = settings, mesh, loop
        parallelism = settings.member_parallelism
        per_member = sharding.member_sharding(mesh)     # member-leading arrays, split over the mesh
        replicated = sharding.replicated_sharding(mesh)  # the data and step indices: whole on every device

        def lifted(fn, n_member_args: int, n_shared_args: int):
            # Every program is traced under the config's arithmetic policy (precision.py).
            policy = with_policy(guarded(fn, max_shapes), settings.precision, settings.conv_input_rounding)
            return sharding.over_devices(policy, mesh, n_member_args, n_shared_args)

        self._init = jax.jit(lifted(over_members(make_init_one(model, settings), parallelism, 1), 1, 0),
                             in_shardings=(per_member,), out_shardings=per_member)
        if loop == "scan":
            self._epoch = jax.jit(lifted(make_member_epoch(model, settings), 2, 1),
                                  in_shardings=(per_member, per_member, replicated), out_shardings=per_member,
                                  donate_argnums=0)
        else:
            self._shuffle = jax.jit(lifted(over_members(make_shuffle_one(settings), parallelism, 1), 1, 1),
                                    in_shardings=(per_member, replicated), out_shardings=per_member,
                                    donate_argnums=0)
            self._step = jax.jit(lifted(make_member_step(model, settings), 3, 2),
                                 in_shardings=(per_member, per_member, per_member, replicated, replicated),
                                 out_shardings=per_member, donate_argnums=0)
            # Step indices as device scalars made once: no host->device transfer per step.
            self._step_index = [sharding.put_replicated(np.int32(i), mesh)
                                for i in range(settings.steps_per_epoch)]
            self._stack = jax.jit(lambda losses: jnp.stack(losses, axis=1), out_shardings=per_member)

    def init(self, seeds: jax.Array) -> MemberState:
        return self._init(seeds)

    def epoch(self, state: MemberState, consts: MemberConsts, data: SplitArrays):
        """One epoch; `state` is donated (do not use it afterwards)."""
        if self.loop == "scan":
            return self._epoch(state, consts, data)
        state, order = self._shuffle(state, data)
        losses = []
        for i in self._step_index:
            state, loss = self._step(state, consts, order, data, i)
            losses.append(loss)
        return state, self._stack(losses)

    def memory_analysis(self, abstract_state, abstract_consts, abstract_data) -> dict:
        """Per-device bytes of the program's largest compiled part, from XLA's own analysis.

        `abstract_*` are `jax.ShapeDtypeStruct`s (shardings come from the jit).
        """
        if self.loop == "scan":
            lowered = self._epoch.lower(abstract_state, abstract_consts, abstract_data)
        else:
            order = jax.ShapeDtypeStruct(
                (abstract_state.diverged.shape[0], self.settings.steps_per_epoch, self.settings.batch_size),
                jnp.int32)
            lowered = self._step.lower(abstract_state, abstract_consts, order, abstract_data,
                                       jax.ShapeDtypeStruct((), jnp.int32))
        return compiled_memory(lowered.compile())


def compiled_memory(compiled) -> dict:
    """Peak per-device bytes of a compiled program (arguments + outputs - aliased + temporaries)."""
    m = compiled.memory_analysis()
    if m is None:
        return {"peak_bytes": None}
    fields = ("argument_size_in_bytes", "output_size_in_bytes", "alias_size_in_bytes", "temp_size_in_bytes")
    out = {f: int(getattr(m, f, 0) or 0) for f in fields}
    out["peak_bytes"] = (out["argument_size_in_bytes"] + out["output_size_in_bytes"]
                         - out["alias_size_in_bytes"] + out["temp_size_in_bytes"])
    return out


def device_memory_bytes() -> int:
    """Memory of one local device: the accelerator's limit, or on CPU the host RAM shared by its devices."""
    device = jax.local_devices()[0]
    try:
        stats = device.memory_stats()
    except Exception:  # some backends do not implement it
        stats = None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return int(ram // max(1, jax.local_device_count()))
