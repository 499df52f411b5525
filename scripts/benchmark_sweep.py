"""A sweep as one run against its points run one after another, side by side (BENCHMARKS.md, "Sweeps").

  python scripts/benchmark_sweep.py --config unet:smoke --rates 1e-3,3e-4,1e-4 --epochs 3 --out /tmp/bsweep

Runs `ecg-jax train` once with `--config.sweep.train.learning_rate=RATES` and then once per rate
(`--config.train.learning_rate=R`, the same held-out validation records), each in its own process,
and prints: wall seconds of each way (start-up and compiles included), training throughput in
member-steps/s over the epochs after each program's first (compile excluded, from metrics.jsonl),
their ratios, and whether every sweep member's test and validation metrics equal its lone run's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time


def train(args: list[str], workdir: str) -> float:
    tic = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ecg_jax", "train", *args, "--workdir", workdir], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - tic


def throughput(workdir: str, steps_per_epoch: int) -> tuple[float, float]:
    """(member-steps, seconds) of every epoch but each program's first (which includes its compile)."""
    steps = seconds = 0.0
    for line in open(os.path.join(workdir, "metrics.jsonl")):
        row = json.loads(line)
        if row["epoch"] > 1:
            steps += steps_per_epoch * len(row["members"])
            seconds += row["epoch_seconds"]
    return steps, seconds


def rows(workdir: str) -> list[dict]:
    return [json.loads(x) for x in open(os.path.join(workdir, "results.jsonl")) if x.strip()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="unet:smoke")
    p.add_argument("--rates", default="1e-3,3e-4,1e-4")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--validation_records", default="1", help="as the sweep's 'auto' holds out (1 of 8 smoke records)")
    p.add_argument("--out", required=True)
    p.add_argument("--json", default="")
    a = p.parse_args()
    shutil.rmtree(a.out, ignore_errors=True)
    base = ["--config", a.config, f"--config.train.epochs={a.epochs}", f"--config.seeds={a.seeds}",
            f"--config.data.validation_records={a.validation_records}"]
    rates = a.rates.split(",")
    sweep_dir = os.path.join(a.out, "sweep")
    sweep_wall = train(base + [f"--config.sweep.train.learning_rate={a.rates}"], sweep_dir)
    alone_wall, alone_dirs = 0.0, []
    for r in rates:
        d = os.path.join(a.out, f"alone-{r}")
        alone_wall += train(base + [f"--config.train.learning_rate={r}"], d)
        alone_dirs.append(d)
    card = json.load(open(os.path.join(sweep_dir, "data_card.json")))
    batch = json.load(open(os.path.join(sweep_dir, "config.json")))["train"]["batch_size"]
    steps_per_epoch = card["n_train"] // batch
    s_steps, s_seconds = throughput(sweep_dir, steps_per_epoch)
    a_steps = a_seconds = 0.0
    for d in alone_dirs:
        st, se = throughput(d, steps_per_epoch)
        a_steps, a_seconds = a_steps + st, a_seconds + se
    swept = {(r["seed"], r["sweep"]["learning_rate"]): r for r in rows(sweep_dir)}
    equal = all(swept[(r["seed"], float(rate))]["metrics"] == r["metrics"]
                and swept[(r["seed"], float(rate))]["validation_metrics"] == r["validation_metrics"]
                for rate, d in zip(rates, alone_dirs, strict=True) for r in rows(d))
    result = {"config": a.config, "rates": rates, "epochs": a.epochs, "seeds": a.seeds,
              "sweep_wall_s": round(sweep_wall, 1), "alone_wall_s": round(alone_wall, 1),
              "wall_ratio_alone_over_sweep": round(alone_wall / sweep_wall, 3),
              "sweep_member_steps_per_s": round(s_steps / s_seconds, 2),
              "alone_member_steps_per_s": round(a_steps / a_seconds, 2),
              "throughput_ratio_sweep_over_alone": round((s_steps / s_seconds) / (a_steps / a_seconds), 3),
              "members_equal_their_lone_runs": equal, "load_average": os.getloadavg()}
    print(json.dumps(result, indent=1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
