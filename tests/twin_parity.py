"""One parity check for a Flax network and its PyTorch twin on the same weights.

Used by the final-revision twin tests (tests/test_final_*.py). A twin module
supplies `to_flax(state) -> variables`, mapping a PyTorch state dict
({"encoder.0.conv.weight": array, ...}, running statistics included or not)
onto the Flax variable tree of the same network (NLC layouts: a convolution
kernel (out, in, k) becomes (k, in, out), a linear weight (out, in) becomes
(in, out)). The same function maps the twin's parameter gradients, which is
how gradients are compared.

Four things are compared, in float64 (to ~1e-9 relative: only summation order
differs) and float32 (~1e-5):
  - the train-mode output (batch statistics),
  - the BatchNorm running statistics after that train-mode forward pass,
  - the gradients of the MSE loss (train mode) with respect to every parameter,
  - the eval-mode output (running statistics).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import torch

TOLERANCES = {"float64": dict(rtol=1e-9, atol=1e-11), "float32": dict(rtol=1e-4, atol=2e-5)}

ToFlax = Callable[[dict[str, np.ndarray]], dict]


def conv_kernel(weight: np.ndarray) -> np.ndarray:
    """PyTorch Conv1d weight (out, in, k) -> Flax (k, in, out)."""
    return np.transpose(weight, (2, 1, 0))


def conv_transpose_kernel(weight: np.ndarray) -> np.ndarray:
    """PyTorch ConvTranspose1d weight (in, out, k) -> (k, in, out) as ecg_jax.models.layers stores it."""
    return np.transpose(weight, (2, 0, 1))


def dense_kernel(weight: np.ndarray) -> np.ndarray:
    """PyTorch Linear weight (out, in) -> Flax (in, out)."""
    return np.transpose(weight)


def set_path(tree: dict, path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def state_of(net: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in net.state_dict().items()
            if not k.endswith("num_batches_tracked")}


def grads_of(net: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: p.grad.detach().cpu().numpy().copy() for k, p in net.named_parameters()
            if p.grad is not None}


def _close(got, want, tol, what):
    assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(want), what
    for (path, g), w in zip(jax.tree_util.tree_leaves_with_path(got), jax.tree_util.tree_leaves(want), strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), err_msg=f"{what} {jax.tree_util.keystr(path)}",
                                   **tol)


def check_parity(make_twin: Callable[[], torch.nn.Module], flax_model, to_flax: ToFlax, *,
                 dtype: str = "float64", batch: int = 4, length: int = 64, seed: int = 0,
                 apply_kwargs: dict | None = None) -> None:
    """Assert that `flax_model` computes what the twin computes, in train and eval mode.

    `make_twin()` builds the twin with freshly initialised weights (a fixed torch
    seed is set first); `apply_kwargs` go to every Flax `apply` (e.g. rngs).
    """
    tol = TOLERANCES[dtype]
    torch_dtype = {"float64": torch.float64, "float32": torch.float32}[dtype]
    torch.manual_seed(seed)
    net = make_twin().to(torch_dtype)
    _perturb_batchnorm(net)  # non-trivial running statistics and affine parameters
    kwargs = apply_kwargs or {}
    x = torch.randn(batch, 2, length, dtype=torch_dtype, generator=torch.Generator().manual_seed(seed + 1))
    x_nlc = np.ascontiguousarray(x.numpy().transpose(0, 2, 1))
    # The Flax tree's shapes, traced in float32: under x64 some initialisers
    # (BatchNorm's) would make float64 parameters that meet float32 kernels.
    reference = jax.eval_shape(lambda: flax_model.init(jax.random.key(0), jnp.zeros((1, length, 2), jnp.float32),
                                                       train=False))
    with jax.enable_x64(dtype == "float64"):
        variables = jax.tree_util.tree_map(jnp.asarray, to_flax(state_of(net)))
        shapes = jax.tree_util.tree_map(jnp.shape, variables)
        assert shapes == jax.tree_util.tree_map(lambda a: a.shape, reference), "copied tree != Flax tree"
        has_stats = "batch_stats" in variables

        def loss_fn(params, stats, x):
            v = {"params": params, **({"batch_stats": stats} if has_stats else {})}
            out, updates = flax_model.apply(v, x, train=True, mutable=["batch_stats"], **kwargs)
            return jnp.mean((out - x) ** 2), (out, updates)

        (loss, (out_train, updates)), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(
            variables["params"], variables.get("batch_stats"), jnp.asarray(x_nlc))

        net.train()
        net.zero_grad()
        y = net(x)
        torch_loss = torch.mean((y - x) ** 2)
        torch_loss.backward()
        _close(out_train, y.detach().numpy().transpose(0, 2, 1), tol, "train-mode output")
        np.testing.assert_allclose(float(loss), torch_loss.item(), **tol)
        after = to_flax(state_of(net))
        if has_stats:
            _close(updates["batch_stats"], after["batch_stats"], tol, "running statistics")
        _close(grads, to_flax(grads_of(net))["params"], tol, "MSE-loss gradients")

        net.eval()
        with torch.no_grad():
            y_eval = net(x).numpy().transpose(0, 2, 1)
        eval_vars = jax.tree_util.tree_map(jnp.asarray, after)
        out_eval = jax.jit(lambda v, x: flax_model.apply(v, x, train=False))(eval_vars, jnp.asarray(x_nlc))
        _close(out_eval, y_eval, tol, "eval-mode output")


def _perturb_batchnorm(net: torch.nn.Module) -> None:
    gen = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.LayerNorm)):
                if getattr(m, "weight", None) is not None:
                    m.weight.add_(0.1 * torch.randn(m.weight.shape, generator=gen, dtype=m.weight.dtype))
                    m.bias.add_(0.1 * torch.randn(m.bias.shape, generator=gen, dtype=m.bias.dtype))
                if getattr(m, "running_mean", None) is not None:
                    m.running_mean.add_(0.1 * torch.randn(m.running_mean.shape, generator=gen,
                                                          dtype=m.running_mean.dtype))
                    m.running_var.mul_(1 + 0.2 * torch.rand(m.running_var.shape, generator=gen,
                                                            dtype=m.running_var.dtype))
