"""The PyTorch eager twins (benchmarks/) are the networks of models.md.

torch is an optional benchmark extra (benchmarks/requirements.txt): without
it this module is skipped with a reason; that is the only skip it has.
Besides the twins' own checks (parameter counts, shapes, hand-computed block
values, training, the timing function), the twins are compared with the
project's Flax networks on copied weights, so the speed benchmark provably
compares the same computation.
"""

from __future__ import annotations

import importlib.util
import math
import pathlib
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent

if importlib.util.find_spec("torch") is None:
    pytest.skip("torch not installed: pip install -r benchmarks/requirements.txt",
                allow_module_level=True)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
from torch_models import CAC, CSE, REFERENCE_PARAM_COUNTS, count_params, create_torch_model, soft_threshold  # noqa: E402
from torch_train_benchmark import measure_torch  # noqa: E402

from ecg_jax.models import create_model  # noqa: E402

NAMES = ("unet", "dancer")


@pytest.mark.parametrize("name,expected", [("unet", 200_994), ("dancer", 321_754)])
def test_parameter_counts_match_models_md(name, expected):
    assert count_params(create_torch_model(name)) == expected == REFERENCE_PARAM_COUNTS[name]


@pytest.mark.parametrize("name", NAMES)
def test_output_shape_equals_input_shape(name):
    torch.manual_seed(0)
    net = create_torch_model(name)
    for shape in [(2, 2, 256), (3, 2, 64)]:
        assert net(torch.randn(*shape)).shape == shape


def test_unknown_name_is_rejected():
    with pytest.raises(ValueError, match="no PyTorch twin"):
        create_torch_model("dacnn")


def test_soft_threshold_by_hand():
    x = torch.tensor([-3.0, -0.5, 0.5, 2.0])
    torch.testing.assert_close(soft_threshold(x, torch.tensor(1.0)), torch.tensor([-2.0, 0.0, 0.0, 1.0]))


def test_cac_with_neutral_gate_thresholds_at_half_the_mean_magnitude():
    cac = CAC(2).eval()
    with torch.no_grad():  # fc2 = 0 makes the gate sigmoid(0) = 0.5 whatever the input
        cac.attention[3].weight.zero_()
        cac.attention[3].bias.zero_()
    x = torch.tensor([[[2.0, -2.0, 4.0, -4.0], [1.0, 1.0, 1.0, 1.0]]])
    # channel 0: mean|x| = 3, threshold 1.5; channel 1: mean|x| = 1, threshold 0.5
    expected = torch.tensor([[[0.5, -0.5, 2.5, -2.5], [0.5, 0.5, 0.5, 0.5]]])
    torch.testing.assert_close(cac(x), expected)


def test_cse_with_neutral_gate_halves_the_input():
    cse = CSE(8).eval()
    with torch.no_grad():
        cse.gate[3].weight.zero_()
    x = torch.randn(2, 8, 16)
    torch.testing.assert_close(cse(x), x / 2)


def test_upsample_is_half_pixel_linear():
    net = create_torch_model("unet")
    out = net.up(torch.tensor([[[0.0, 1.0, 2.0, 3.0]]]))
    torch.testing.assert_close(out, torch.tensor([[[0.0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.0]]]))


@pytest.mark.parametrize("name", NAMES)
def test_a_few_adam_steps_reduce_the_loss_on_a_fixed_batch(name):
    torch.manual_seed(1)
    net = create_torch_model(name).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.randn(8, 2, 64)
    losses = []
    for _ in range(10):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(net(x), x)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False)), losses  # neighbours; monotone on one batch
    assert losses[-1] < 0.9 * losses[0], losses


def test_measure_torch_runs_the_warmup_and_the_steps_it_reports(monkeypatch):
    """1 warm-up + 3 timed Adam steps: 4 optimiser steps run, 3 are reported, and the call leaves
    torch's thread count and global RNG as it found them. (How fast is measured by the benchmark
    scripts, never by a timed unit test.)"""
    threads_before = torch.get_num_threads()
    rng_before = torch.get_rng_state()
    counted = []
    adam_step = torch.optim.Adam.step

    def counting_step(self, *args, **kwargs):
        counted.append(self)
        return adam_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", counting_step)
    # 40 windows in batches of 16: 3 batches per epoch (the last one short), so
    # 1 warm-up + 3 timed steps cross an epoch boundary and reshuffle.
    r = measure_torch("dancer", n_windows=40, batch_size=16, steps=3, warmup_steps=1, threads=1)
    assert len(counted) == 4
    assert r["n_params"] == 321_754 and r["steps"] == 3 and r["threads"] == 1 and r["batch_size"] == 16
    assert math.isfinite(r["steps_per_s"]) and r["steps_per_s"] > 0
    assert math.isclose(r["steps_per_s"] * r["step_ms"], 1e3, rel_tol=1e-9)   # both from one timed span
    assert torch.get_num_threads() == threads_before  # no side effects left behind
    assert torch.equal(torch.get_rng_state(), rng_before)


def test_measure_torch_rejects_zero_steps():
    with pytest.raises(ValueError):
        measure_torch("unet", steps=0)


# --- the twins against the project's Flax networks -------------------------

def _flax_path(torch_module_path: str) -> tuple[str, ...]:
    """Flax module path of a torch module path of TorchUNet / TorchDANCER."""
    parts = torch_module_path.split(".")
    if parts[0] == "encoder" and parts[2] == "0":
        return (f"enc{parts[1]}_conv",)
    if parts[0] == "encoder":  # encoder.i.1.{0: CAC, 1: CSE}.{attention|gate}.n
        block = {"0": "cac", "1": "cse"}[parts[3]]
        layer = {("cac", "0"): "fc1", ("cac", "1"): "bn", ("cac", "3"): "fc2",
                 ("cse", "0"): "conv1", ("cse", "1"): "bn", ("cse", "3"): "conv2"}[block, parts[5]]
        return (f"enc{parts[1]}_block", block, layer)
    if parts[0] == "bottleneck":
        return ("bottleneck",)
    if parts[0] == "decoder":
        return (f"dec{parts[1]}_conv",)
    raise KeyError(torch_module_path)


def _set(tree: dict, path: tuple[str, ...], value: np.ndarray) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = jnp.asarray(value)


def torch_to_flax_variables(net: torch.nn.Module) -> dict:
    """Copy a twin's weights into the layout of ecg_jax.models (NLC, kernels (k, in, out))."""
    variables: dict = {"params": {}}
    for full_name, tensor in net.state_dict().items():
        module_path, leaf = full_name.rsplit(".", 1)
        if leaf == "num_batches_tracked":
            continue
        path = _flax_path(module_path)
        value = tensor.detach().numpy()
        is_bn = path[-1] == "bn"
        if leaf in ("running_mean", "running_var"):
            stats = variables.setdefault("batch_stats", {})
            _set(stats, path + ({"running_mean": "mean", "running_var": "var"}[leaf],), value)
        elif leaf == "weight" and is_bn:
            _set(variables["params"], path + ("scale",), value)
        elif leaf == "weight":  # conv (out, in, k) -> (k, in, out); linear (out, in) -> (in, out)
            _set(variables["params"], path + ("kernel",), value.transpose(tuple(reversed(range(value.ndim)))))
        else:
            _set(variables["params"], path + (leaf,), value)
    return variables


@pytest.mark.parametrize("name", NAMES)
def test_twins_compute_what_the_flax_networks_compute(name):
    torch.manual_seed(2)
    net = create_torch_model(name).train()
    model = create_model(name)
    variables = torch_to_flax_variables(net)
    # Shapes only (eval_shape compiles nothing): the copied tree must be exactly Flax's.
    reference = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 64, 2)), train=False))
    assert jax.tree_util.tree_map(jnp.shape, variables) == jax.tree_util.tree_map(lambda a: a.shape, reference)
    # jit: op-by-op Flax dispatch would compile every primitive separately (slow).
    apply_train = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))
    apply_eval = jax.jit(lambda v, x: model.apply(v, x, train=False))

    x = torch.randn(4, 2, 64)
    x_nlc = jnp.asarray(x.numpy().transpose(0, 2, 1))
    # Train mode: batch statistics, and the running statistics move the same way.
    y_torch = net(x).detach().numpy().transpose(0, 2, 1)
    y_flax, updates = apply_train(variables, x_nlc)
    np.testing.assert_allclose(y_flax, y_torch, rtol=1e-4, atol=1e-5)
    stats_after = torch_to_flax_variables(net).get("batch_stats", {})
    assert jax.tree_util.tree_structure(updates.get("batch_stats", {})) == jax.tree_util.tree_structure(stats_after)
    for got, want in zip(jax.tree_util.tree_leaves(updates.get("batch_stats", {})),
                         jax.tree_util.tree_leaves(stats_after), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    # Eval mode: running statistics.
    net.eval()
    with torch.no_grad():
        y_torch = net(x).numpy().transpose(0, 2, 1)
    y_flax = apply_eval(torch_to_flax_variables(net), x_nlc)
    np.testing.assert_allclose(y_flax, y_torch, rtol=1e-4, atol=1e-5)
