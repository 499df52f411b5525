"""Training throughput of the PyTorch twins (eager or torch.compile), in member-steps per second.

One member-step is one Adam step of one network on a batch of 64 windows of
(2, 256), exactly as in the reference protocol's training loop: MSE loss,
Adam(lr 1e-3, betas 0.9/0.999, eps 1e-8), a fresh shuffle every epoch, the
per-epoch x0.1 learning-rate step at epoch 40. Data are random normal
(already "normalised"): throughput does not depend on the values.

    python benchmarks/torch_train_benchmark.py --models unet,dancer --steps 50
    python benchmarks/torch_train_benchmark.py --json          # JSON on stdout
    python benchmarks/torch_train_benchmark.py --models drsn --compile   # torch.compile'd network

Any network with a twin in torch_twins.TWINS can be named. With --compile the
network (not the optimizer) goes through torch.compile; the first warm-up step
compiles, and `compile_s` is that step's time minus a timed step's. `ecg-jax
benchmark` runs this script once per network and mode, each in its own process
(a time limit kills a torch.compile that does not finish).

scripts/benchmark_train.py imports `measure_torch` from here (after adding
this folder to sys.path) to put the eager number beside the JAX ones. This
module imports torch at its top, so a missing torch surfaces as an
ImportError on `import torch_train_benchmark`, which such callers catch.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import torch
from torch import nn
from torch_models import count_params
from torch_twins import create_twin, describe

WINDOW = 256
LEADS = 2
LR_DROP_EPOCH = 40  # protocol.md: learning rate x0.1 from epoch 40 on


def random_training_set(n_windows: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised-looking (noisy, clean) pairs of shape (n_windows, 2, 256)."""
    noisy = torch.randn(n_windows, LEADS, WINDOW, generator=generator)
    clean = torch.randn(n_windows, LEADS, WINDOW, generator=generator)
    return noisy, clean


def batches(noisy: torch.Tensor, clean: torch.Tensor, batch_size: int,
            generator: torch.Generator, on_epoch_end):
    """Endless (noisy, clean) minibatches, reshuffled every epoch.

    Like the reference's DataLoader(shuffle=True, drop_last=False), the last
    batch of an epoch may be short. Indexing the resident tensors directly is
    what a DataLoader does minus its per-sample collate, so this is, if
    anything, kind to PyTorch.
    """
    n = noisy.shape[0]
    while True:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            yield noisy[idx], clean[idx]
        on_epoch_end()


def measure_torch(model_name: str, n_windows: int = 8000, batch_size: int = 64, steps: int = 20,
                  threads: int | None = None, warmup_steps: int = 5, seed: int = 0, compile: bool = False) -> dict:
    """Train `model_name` (a name of torch_twins.TWINS) on CPU and time `steps` optimisation steps,
    eagerly or, with `compile`, its network through torch.compile (then at least one warm-up step).

    Returns dict(steps_per_s, step_ms, n_params, threads, steps, batch_size, mode, first_step_s,
    compile_s, twin); compile_s (the first warm-up step minus a timed step) only with `compile`.
    `threads` defaults to os.cpu_count(); torch's global thread count and RNG
    state are restored afterwards so the call leaves no side effects behind.
    """
    if steps < 1 or warmup_steps < 0 or n_windows < 1 or batch_size < 1:
        raise ValueError("steps, n_windows and batch_size must be >= 1 and warmup_steps >= 0")
    if compile:
        warmup_steps = max(warmup_steps, 1)   # the compile happens in the first step, never in a timed one
    threads = threads or os.cpu_count() or 1
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.random.fork_rng(devices=[]):  # keep the caller's global RNG untouched
            torch.manual_seed(seed)
            model = create_twin(model_name)
            n_params = count_params(model)
            net = torch.compile(model) if compile else model
            seconds, first_s = _train_and_time(net, n_windows, batch_size, steps, warmup_steps, seed)
    finally:
        torch.set_num_threads(previous_threads)
    out = {"steps_per_s": steps / seconds, "step_ms": 1e3 * seconds / steps,
           "n_params": n_params, "threads": threads, "steps": steps,
           "batch_size": batch_size, "mode": "compile" if compile else "eager", "first_step_s": first_s,
           "twin": describe(model_name)}
    if compile:
        out["compile_s"] = max(0.0, first_s - seconds / steps)
    return out


def _train_and_time(model: nn.Module, n_windows: int, batch_size: int, steps: int,
                    warmup_steps: int, seed: int) -> tuple[float, float | None]:
    """Seconds spent on `steps` training steps after `warmup_steps` untimed ones, and the first
    warm-up step's seconds (None without warm-up)."""
    generator = torch.Generator().manual_seed(seed)
    noisy, clean = random_training_set(n_windows, generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[LR_DROP_EPOCH], gamma=0.1)
    loss_fn = nn.MSELoss()
    model.train()
    stream = batches(noisy, clean, batch_size, generator, on_epoch_end=scheduler.step)

    def step() -> torch.Tensor:
        x, y = next(stream)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    first_s = None
    for i in range(warmup_steps):
        tic = time.perf_counter()
        step().item()   # .item(): the step has finished
        if i == 0:
            first_s = time.perf_counter() - tic
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    seconds = time.perf_counter() - start
    if not math.isfinite(loss.item()):
        raise RuntimeError(f"training diverged: final loss {loss.item()}")
    return seconds, first_s


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="unet,dancer", help="comma-separated names of torch_twins.TWINS")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--n-windows", type=int, default=8000, help="training windows (protocol: 8000)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network (first warm-up compiles)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)

    results = []
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        r = measure_torch(name, n_windows=args.n_windows, batch_size=args.batch_size, steps=args.steps,
                          threads=args.threads, warmup_steps=args.warmup, compile=args.compile)
        results.append({"model": name, **r})
    if args.json:
        print(json.dumps({"torch": torch.__version__, "cpu_count": os.cpu_count(), "results": results}, indent=2))
        return
    mode = "torch.compile" if args.compile else "eager"
    print(f"PyTorch {torch.__version__} {mode}, CPU, batch {args.batch_size}, window {WINDOW}, "
          f"{args.steps} timed steps after {args.warmup} warm-up")
    print(f"{'model':<16} {'params':>9} {'threads':>7} {'steps/s':>9} {'ms/step':>9}"
          + (f" {'compile s':>9}" if args.compile else ""))
    for r in results:
        print(f"{r['model']:<16} {r['n_params']:>9,} {r['threads']:>7} {r['steps_per_s']:>9.2f} {r['step_ms']:>9.1f}"
              + (f" {r['compile_s']:>9.1f}" if args.compile else ""))


if __name__ == "__main__":
    main()
