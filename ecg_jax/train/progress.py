"""Progress bar over epochs and the per-epoch `metrics.jsonl` log.

No extra dependency: on a terminal the bar redraws one line; in a log file
(CI, nohup) it prints one line per epoch instead.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from typing import Sequence

import numpy as np


def _fmt_time(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    m, s = divmod(seconds, 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class ProgressBar:
    def __init__(self, label: str, total_epochs: int, start_epoch: int, member_steps_per_epoch: int,
                 stream=sys.stderr):
        self.label = label
        self.total = total_epochs
        self.done = start_epoch
        self.member_steps = member_steps_per_epoch
        self.stream = stream
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.timed_epochs = 0
        self.timed_seconds = 0.0

    def update(self, epoch: int, losses: np.ndarray, seconds: float, first_call: bool) -> None:
        """`epoch` is the number of finished epochs; `losses` one per member (NaN = diverged)."""
        self.done = epoch
        if not first_call:  # the first call of a process includes compilation
            self.timed_epochs += 1
            self.timed_seconds += seconds
        rate = self.member_steps * self.timed_epochs / self.timed_seconds if self.timed_seconds else float("nan")
        per_epoch = self.timed_seconds / self.timed_epochs if self.timed_epochs else seconds
        eta = per_epoch * (self.total - epoch)
        finite = losses[np.isfinite(losses)]
        n_bad = int(losses.size - finite.size)
        loss_txt = (f"loss mean {finite.mean():.4f} min {finite.min():.4f} max {finite.max():.4f}"
                    if finite.size else "loss: all members diverged")
        width = 20
        filled = int(width * epoch / max(1, self.total))
        bar = "#" * filled + "." * (width - filled)
        extra = f" | {n_bad} diverged" if n_bad else ""
        speed = f"{rate:,.1f} member-steps/s" if math.isfinite(rate) else f"compile+epoch {seconds:.1f}s"
        line = (f"{self.label} [{bar}] epoch {epoch}/{self.total} | {loss_txt}{extra} | {speed} "
                f"| ETA {_fmt_time(eta)}")
        if self.tty:
            end = "\n" if epoch >= self.total else ""
            self.stream.write("\r" + line.ljust(140) + end)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


class MetricsLog:
    """Append-only JSON lines: one object per (chunk, epoch) with per-member losses."""

    def __init__(self, path: str):
        self.path = path

    def truncate_after(self, chunk: int, epoch: int) -> None:
        """Drop this chunk's lines past `epoch` (used when resuming from a checkpoint)."""
        if not os.path.exists(self.path):
            return
        with open(self.path) as f:
            lines = [l for l in f if l.strip()]
        keep = []
        for line in lines:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a kill mid-write
                continue
            if row.get("chunk") == chunk and row.get("epoch", 0) > epoch:
                continue
            keep.append(line if line.endswith("\n") else line + "\n")
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.writelines(keep)
        os.replace(tmp, self.path)

    def append(self, row: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()


def epoch_row(chunk: int, epoch: int, member_indices: Sequence[int], losses: np.ndarray,
              diverged: np.ndarray, lr: float, seconds: float) -> dict:
    return {
        "chunk": chunk, "epoch": epoch, "time": time.time(), "epoch_seconds": round(seconds, 4),
        "learning_rate": lr, "members": [int(i) for i in member_indices],
        "loss": [None if not np.isfinite(x) else float(x) for x in losses],
        "diverged": [bool(d) for d in diverged],
    }


class TensorBoardLog:
    """Optional TensorBoard scalars (train.tensorboard=True): mean loss and one curve per member."""

    def __init__(self, logdir: str):
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            from ecg_jax.errors import ConfigError
            raise ConfigError("train.tensorboard=True needs tensorboardX: pip install -r requirements.txt") from None
        self.writer = SummaryWriter(logdir)

    def log_epoch(self, row: dict) -> None:
        losses = np.asarray([np.nan if x is None else x for x in row["loss"]], float)
        epoch = row["epoch"]
        if np.isfinite(losses).any():
            self.writer.add_scalar("loss/mean_over_members", float(np.nanmean(losses)), epoch)
        for index, loss in zip(row["members"], losses):
            if np.isfinite(loss):
                self.writer.add_scalar(f"loss/member_{index:03d}", float(loss), epoch)
        self.writer.add_scalar("learning_rate", row["learning_rate"], epoch)
        self.writer.add_scalar("epoch_seconds", row["epoch_seconds"], epoch)
        self.writer.flush()
