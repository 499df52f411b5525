"""A sweep as one run against its points run one after another, side by side (BENCHMARKS.md, "Sweeps").

  ecg-jax benchmark-sweep --config unet:smoke --rates 1e-3,3e-4,1e-4 --epochs 3 --out /tmp/bsweep

Runs `ecg-jax train` once with `--config.sweep.train.learning_rate=RATES` and then once per rate
(`--config.train.learning_rate=R`, the same held-out validation records), each in its own process,
and prints: wall seconds of each way (start-up and compiles included), training throughput in
member-steps/s over the epochs after each program's first (compile excluded, from metrics.jsonl),
their ratios, and whether every sweep member's test and validation metrics equal its lone run's.
"""

import json
import os
import shutil
import subprocess
import sys
import time

from absl import flags

from ecg_jax.errors import ConfigError

_CONFIG = flags.DEFINE_string("config", "unet:smoke", "the config both ways train")
_RATES = flags.DEFINE_string("rates", "1e-3,3e-4,1e-4", "the learning rates: the sweep's points, and the lone runs")
_EPOCHS = flags.DEFINE_integer("epochs", 3, "epochs of every run")
_SEEDS = flags.DEFINE_integer("seeds", 1, "seeds of every run")
_VALIDATION = flags.DEFINE_string("validation_records", "1",
                                  "held-out records of every run (the sweep's 'auto' holds out 1 of 8 smoke records)")
_OUT = flags.DEFINE_string("out", "", "folder for the workdirs (replaced)")
_JSON = flags.DEFINE_string("json", "", "write the result here too")


def _train(args: list[str], workdir: str) -> float:
    tic = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ecg_jax", "train", *args, "--workdir", workdir], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - tic


def _throughput(workdir: str, steps_per_epoch: int) -> tuple[float, float]:
    """(member-steps, seconds) of every epoch but each program's first (which includes its compile)."""
    steps = seconds = 0.0
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        for line in f:
            row = json.loads(line)
            if row["epoch"] > 1:
                steps += steps_per_epoch * len(row["members"])
                seconds += row["epoch_seconds"]
    return steps, seconds


def _rows(workdir: str) -> list[dict]:
    with open(os.path.join(workdir, "results.jsonl")) as f:
        return [json.loads(x) for x in f if x.strip()]


def _json(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def main(argv):
    if len(argv) > 1:
        raise ConfigError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not _OUT.value:
        raise ConfigError("--out is required (a folder for the workdirs; it is replaced)")
    shutil.rmtree(_OUT.value, ignore_errors=True)
    base = ["--config", _CONFIG.value, f"--config.train.epochs={_EPOCHS.value}", f"--config.seeds={_SEEDS.value}",
            f"--config.data.validation_records={_VALIDATION.value}"]
    rates = _RATES.value.split(",")
    sweep_dir = os.path.join(_OUT.value, "sweep")
    sweep_wall = _train(base + [f"--config.sweep.train.learning_rate={_RATES.value}"], sweep_dir)
    alone_wall, alone_dirs = 0.0, []
    for r in rates:
        d = os.path.join(_OUT.value, f"alone-{r}")
        alone_wall += _train(base + [f"--config.train.learning_rate={r}"], d)
        alone_dirs.append(d)
    card = _json(os.path.join(sweep_dir, "data_card.json"))
    steps_per_epoch = card["n_train"] // _json(os.path.join(sweep_dir, "config.json"))["train"]["batch_size"]
    s_steps, s_seconds = _throughput(sweep_dir, steps_per_epoch)
    a_steps = a_seconds = 0.0
    for d in alone_dirs:
        st, se = _throughput(d, steps_per_epoch)
        a_steps, a_seconds = a_steps + st, a_seconds + se
    swept = {(r["seed"], r["sweep"]["learning_rate"]): r for r in _rows(sweep_dir)}
    equal = all(swept[(r["seed"], float(rate))]["metrics"] == r["metrics"]
                and swept[(r["seed"], float(rate))]["validation_metrics"] == r["validation_metrics"]
                for rate, d in zip(rates, alone_dirs, strict=True) for r in _rows(d))
    result = {"config": _CONFIG.value, "rates": rates, "epochs": _EPOCHS.value, "seeds": _SEEDS.value,
              "sweep_wall_s": round(sweep_wall, 1), "alone_wall_s": round(alone_wall, 1),
              "wall_ratio_alone_over_sweep": round(alone_wall / sweep_wall, 3),
              "sweep_member_steps_per_s": round(s_steps / s_seconds, 2),
              "alone_member_steps_per_s": round(a_steps / a_seconds, 2),
              "throughput_ratio_sweep_over_alone": round((s_steps / s_seconds) / (a_steps / a_seconds), 3),
              "members_equal_their_lone_runs": equal, "load_average": os.getloadavg()}
    print(json.dumps(result, indent=1))
    if _JSON.value:
        with open(_JSON.value, "w") as f:
            json.dump(result, f, indent=1)
