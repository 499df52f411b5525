"""Compiled equals intended, for every registered network (tests/jit_guard.py).

Each network's compiled training epoch (shuffle, scanned vmapped step) and
evaluation forward are compared with the same functions run op by op, in
float64, in two fresh processes run side by side: XLA:CPU as this machine
compiles by default, and, on x86-64, capped at AVX2 code
(`--xla_cpu_max_isa=AVX2`), the setting under which jax 0.10.2 computed
AGS-UNet's max-pool gradient wrong (docs/known-issues.md). Capping the ISA
makes the check independent of the CPU that CI happens to get.

The two paths differ by summation order only (~1e-15 of the largest entry;
up to ~1e-10 for the parameters, where Adam divides the near-zero gradients
of convolution biases that feed a BatchNorm by their own size); the wrong
gradient was 0.2 of the largest entry.
"""

from __future__ import annotations

import os
import pickle
import platform
import subprocess
import sys

import pytest

from ecg_jax.models import MODEL_NAMES

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jit_guard  # noqa: E402  (tests/jit_guard.py; importing it changes no JAX setting)

HERE = os.path.dirname(os.path.abspath(__file__))
TOLERANCE = 1e-8   # of each tree's largest entry
ISAS = ["default"] + (["AVX2"] if platform.machine().lower() in ("x86_64", "amd64") else [])

pytestmark = pytest.mark.slow


def _environment(isa: str) -> dict[str, str]:
    env = dict(os.environ)
    if isa != "default":
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_cpu_max_isa={isa}".strip()
    return env


@pytest.fixture(scope="module")
def gaps(tmp_path_factory) -> dict[tuple[str, str], dict[str, float]]:
    """{(isa, network): {compared tree: relative gap}}.

    One process per ISA, run side by side; each compiles every network, and
    the op-by-op references (the costly part: every operation compiled on its
    own) are split between them: network i's is run by process i % 2 and
    compared with both processes' compiled results.
    """
    folder = tmp_path_factory.mktemp("jit_guard")
    outputs = {isa: str(folder / f"{isa}.pkl") for isa in ISAS}
    processes = {}
    for k, isa in enumerate(ISAS):
        specs = [name + (":eager" if i % len(ISAS) == k else "") for i, name in enumerate(MODEL_NAMES)]
        processes[isa] = subprocess.Popen([sys.executable, os.path.join(HERE, "jit_guard.py"), outputs[isa], *specs],
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                          env=_environment(isa))
    found = {}
    for isa, process in processes.items():
        _, err = process.communicate(timeout=3600)
        assert process.returncode == 0, f"jit_guard.py ({isa}) failed:\n{err[-4000:]}"
        with open(outputs[isa], "rb") as f:
            found[isa] = pickle.load(f)
    eager = {name: trees["eager"] for by_name in found.values() for name, trees in by_name.items() if "eager" in trees}
    assert set(eager) == set(MODEL_NAMES)
    return {(isa, name): jit_guard.gaps(found[isa][name]["jitted"], eager[name])
            for isa in ISAS for name in MODEL_NAMES}


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_compiled_training_and_evaluation_equal_the_uncompiled_ones(gaps, name, isa):
    found = gaps[(isa, name)]
    assert set(found) == {"loss", "params", "batch_stats", "Adam state (gradient moments)", "eval output"}
    wrong = {tree: gap for tree, gap in found.items() if not gap <= TOLERANCE}
    assert not wrong, f"{name} compiled ({isa} ISA) differs from op by op: {wrong} (relative to the largest entry)"
