"""The chunk planner's accelerator branch, under a stubbed memory analysis (no accelerator needed).

A program of m members over d devices is stubbed to need `base + per_member * m / d` bytes per device,
so every expected plan below is worked out by hand from MEMORY_FRACTION = 0.8.
"""

from __future__ import annotations

import os
import sys

import jax
import numpy as np
import pytest

from ecg_jax.errors import ConfigError
from ecg_jax.train import loop
from ecg_jax.train.experiment import MEMORY_FRACTION

GiB = 2 ** 30


def stub(per_member: float, base: float = 0.0, d: int = 4):
    calls = []

    def measure(m: int) -> dict:
        calls.append(m)
        assert m % d == 0, "candidates are whole multiples of the device count"
        return {"peak_bytes": int(base + per_member * m / d), "temp_size_in_bytes": 0}

    return measure, calls


def test_memory_fraction_is_what_the_cases_assume():
    assert MEMORY_FRACTION == 0.8


def test_all_members_fit_in_one_program():
    measure, calls = stub(per_member=0.1 * GiB)
    n, plan = loop.plan_members_per_program(100, 4, 80 * GiB, measure)
    assert (n, calls) == (100, [100])        # 25 per device x 0.1 GiB = 2.5 GiB of 64 usable
    assert plan["members_per_device"] == 25 and plan["planned_by"] == "memory_analysis"
    assert plan["peak_bytes"] == int(2.5 * GiB) and plan["device_memory_bytes"] == 80 * GiB


def test_some_members_fit_shrinks_in_proportion():
    # 10 GiB devices, 8 GiB usable, 1 GiB a member: 25 per device needs 25 GiB -> int(25 x 8 / 25) = 8 per device.
    measure, calls = stub(per_member=1 * GiB)
    n, plan = loop.plan_members_per_program(100, 4, 10 * GiB, measure)
    assert (n, calls, plan["members_per_device"]) == (32, [100, 32], 8)


def test_shrinking_steps_down_until_it_fits():
    # A fixed 2 GiB (data, workspace) + 1 GiB a member, 8 GiB usable: 25 -> int(25 x 8 / 27) = 7 needs 9 GiB,
    # -> min(6, int(7 x 8 / 9) = 6) = 6 needs exactly 8 GiB: fits.
    measure, calls = stub(per_member=1 * GiB, base=2 * GiB)
    n, plan = loop.plan_members_per_program(100, 4, 10 * GiB, measure)
    assert (n, calls, plan["members_per_device"]) == (24, [100, 28, 24], 6)


def test_only_one_member_per_device_fits():
    # 6 GiB a member, 8 usable: 25 per device needs 150 GiB -> int(25 x 8 / 150) = 1 per device.
    measure, calls = stub(per_member=6 * GiB)
    n, plan = loop.plan_members_per_program(100, 4, 10 * GiB, measure)
    assert (n, calls, plan["members_per_device"]) == (4, [100, 4], 1)


def test_no_member_fits_is_one_config_error_line():
    measure, calls = stub(per_member=9 * GiB)
    with pytest.raises(ConfigError) as e:
        loop.plan_members_per_program(100, 4, 10 * GiB, measure)
    text = str(e.value)
    assert "\n" not in text and calls == [100, 4]
    assert text.startswith("one member per device needs 9.00 GiB, more than 80% of the device's 10.00 GiB")
    assert "train.batch_size" in text and "train.max_members_per_program" in text


def test_fewer_members_than_devices_and_no_analysis():
    measure, calls = stub(per_member=1 * GiB)
    assert loop.plan_members_per_program(3, 4, 80 * GiB, measure)[0] == 3 and calls == [4]   # padded to 4
    n, plan = loop.plan_members_per_program(10, 4, 1, lambda m: {"peak_bytes": None})
    assert n == 10 and plan["members_per_device"] == 3     # a backend without an analysis keeps all members


def test_members_per_program_takes_the_accelerator_branch_off_the_cpu(monkeypatch, tmp_path):
    """The planner as training calls it: the backend says "gpu", the probe's analysis is stubbed; the
    member counts it is asked about are those of the abstract states it builds."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs"))
    import common

    from ecg_jax.config_utils import resolve_config
    from ecg_jax.train.device_data import SplitArrays
    from ecg_jax.train.experiment import Experiment

    c = common.network_config("unet", "smoke")
    c.seeds, c.data.source = 10, "synthetic"
    experiment = Experiment.from_config(resolve_config(c), 800)
    d = experiment.n_devices
    asked = []

    class Probe:
        def memory_analysis(self, state, consts, data):
            m = state.diverged.shape[0]
            assert consts.snr_db.shape == (m,) and data.noise.shape == (3, 800, 256, 2)
            asked.append(m)
            return {"peak_bytes": int(m / d * 3 * GiB)}

    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    monkeypatch.setattr(loop, "device_memory_bytes", lambda: 16 * GiB)
    data = SplitArrays(np.zeros((800, 256, 2), np.float32), np.zeros((3, 800, 256, 2), np.float32))
    n, plan = loop.members_per_program(experiment, str(tmp_path), Probe(), data)
    # 10 members x 3 GiB over d devices, 12.8 GiB usable a device: 4 per device fit.
    assert plan["members_per_device"] == min(4, -(-10 // d)) and n == min(10, 4 * d)
    assert asked[0] == -(-10 // d) * d


def test_memory_benchmark_fit_and_roofline_by_hand():
    """scripts/benchmark_memory.py's prediction: a line through the two largest sizes, then 80% of a device."""
    from ecg_jax.train.benchmark_memory import HARDWARE, fit, roofline

    memory = {"1": {"peak_bytes": 103}, "10": {"peak_bytes": 1_066_000_000}, "100": {"peak_bytes": 10_066_000_000}}
    out = fit(memory)
    assert out["per_member_bytes"] == 100_000_000 and out["fixed_bytes"] == 66_000_000
    # (0.8 x 80e9 - 66e6) / 1e8 = 639.34 -> 639; (0.8 x 16e9 - 66e6) / 1e8 = 127.34 -> 127
    assert out["members_per_device"] == {"H100 80 GB": 639, "TPU v5e chip 16 GB": 127}
    t = roofline(flops=67e9, bytes_accessed=1.0, compute_utilisation=0.5, memory_utilisation=1.0)
    assert t["H100 SXM (1 GPU), highest"] == pytest.approx(67e9 / (67e12 * 0.5))          # 2 ms, compute-bound
    t = roofline(flops=1.0, bytes_accessed=3.35e9, compute_utilisation=1.0, memory_utilisation=0.5)
    assert t["H100 SXM (1 GPU), default"] == pytest.approx(2e-3)                           # memory-bound
    assert t["TPU v5e-8 (8 chips), default"] == pytest.approx(3.35e9 / (819e9 * 8 * 0.5))
    assert set(HARDWARE) == {"H100 SXM (1 GPU)", "TPU v5e-8 (8 chips)"}


def test_grid_prediction_by_hand():
    """Every network of a grid at 67 GFLOP and 6.7 GB a member-step: on the H100 at highest, 4 ms compute-bound
    (25% of 67 TFLOP/s) and 4 ms memory-bound (50% of 3.35 TB/s), so low = high = member-steps x 4 ms."""
    from ecg_jax.train.benchmark_memory import GRID_STEPS, GRIDS, grid_prediction

    assert GRIDS == {"paper": 9 * 10 * 20 * 100 * 125, "final": (6 * 20 + 5 * 5) * 80 * 125}
    rows = [{"network": n, "member_step": {"flops": 67e9, "bytes_accessed": 6.7e9}}
            for n in set(GRID_STEPS["paper"]) | set(GRID_STEPS["final"])]
    out = grid_prediction(rows)
    low, high = out["paper"]["H100 SXM (1 GPU), highest"]
    assert low == pytest.approx(GRIDS["paper"] * 4e-3) and high == pytest.approx(GRIDS["paper"] * 4e-3)
    # TF32 (495 TFLOP/s): compute 67e9 / (495e12 x 0.25) = 0.54 ms, memory still 4 ms
    low, high = out["final"]["H100 SXM (1 GPU), default"]
    assert low == pytest.approx(GRIDS["final"] * 67e9 / (495e12 * 0.25))
    assert high == pytest.approx(GRIDS["final"] * 4e-3)
    assert "final" not in grid_prediction([r for r in rows if r["network"] != "ralenet"])   # a network missing
