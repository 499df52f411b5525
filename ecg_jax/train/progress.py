"""Progress over the whole run and the per-epoch `metrics.jsonl` log.

On a terminal, a `rich` progress bar counts the member-steps of the whole run
(every chunk), with the rate and the time left; in a log file (CI, nohup) it
stays quiet and one line per epoch is printed instead.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from typing import Sequence

import numpy as np

from ecg_jax.atomic import atomic_path
from ecg_jax.errors import ConfigError
from ecg_jax.interrupts import disk_full_as_one_line


def _fmt_time(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    m, s = divmod(seconds, 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def _loss_text(losses: np.ndarray) -> str:
    finite = losses[np.isfinite(losses)]
    n_bad = int(losses.size - finite.size)
    text = (f"loss mean {finite.mean():.4f} min {finite.min():.4f} max {finite.max():.4f}"
            if finite.size else "loss: all members diverged")
    return text + (f" | {n_bad} diverged" if n_bad else "")


class RunProgress:
    """Member-steps done out of the run's total, with ETA; `update` once per finished epoch."""

    def __init__(self, total_member_steps: int, stream=sys.stderr):
        self.total = total_member_steps
        self.done = 0
        self.stream = stream
        self.timed_steps, self.timed_seconds = 0, 0.0
        self._epochs_seen = 0
        self._bar = None
        if hasattr(stream, "isatty") and stream.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
            self._bar = Progress(TextColumn("{task.description}"), BarColumn(bar_width=20), MofNCompleteColumn(),
                                 TextColumn("member-steps, ETA"), TimeRemainingColumn(),
                                 TextColumn("{task.fields[loss]}"), console=Console(file=stream), transient=False)
            self._task = self._bar.add_task("training", total=total_member_steps, loss="")
            self._bar.start()

    def skip(self, member_steps: int) -> None:
        """Steps already done before this process started (a resumed checkpoint)."""
        self.done += member_steps
        if self._bar is not None:
            self._bar.update(self._task, advance=member_steps)

    def update(self, label: str, epoch: int, epochs: int, member_steps: int, losses: np.ndarray,
               seconds: float) -> None:
        self.done += member_steps
        # The run's first epoch includes compiling the program; later chunks of the same shape reuse it.
        if self._epochs_seen:
            self.timed_steps += member_steps
            self.timed_seconds += seconds
        self._epochs_seen += 1
        rate = self.timed_steps / self.timed_seconds if self.timed_seconds else float("nan")
        if self._bar is not None:
            finite = losses[np.isfinite(losses)]
            self._bar.update(self._task, advance=member_steps, description=f"{label} epoch {epoch}/{epochs}",
                             loss=f"loss {finite.mean():.4f}" if finite.size else "all diverged")
            return
        eta = (self.total - self.done) / rate if math.isfinite(rate) and rate > 0 else float("nan")
        speed = f"{rate:,.1f} member-steps/s" if math.isfinite(rate) else f"compile+epoch {seconds:.1f}s"
        eta_text = _fmt_time(eta) if math.isfinite(eta) else "?"
        self.stream.write(f"{label} epoch {epoch}/{epochs} | {_loss_text(losses)} | {speed} | "
                          f"run {100 * self.done / max(1, self.total):.0f}% | ETA {eta_text}\n")
        self.stream.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


class MetricsLog:
    """Append-only JSON lines: one object per (chunk, epoch) with per-member losses."""

    def __init__(self, path: str):
        self.path = path

    def truncate_after(self, chunk: int, epoch: int) -> None:
        """Drop this chunk's lines past `epoch` (used when resuming from a checkpoint)."""
        if not os.path.exists(self.path):
            return
        with open(self.path) as f:
            lines = [line for line in f if line.strip()]
        keep = []
        for line in lines:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a kill mid-write
                continue
            if row.get("chunk") == chunk and row.get("epoch", 0) > epoch:
                continue
            keep.append(line if line.endswith("\n") else line + "\n")
        with self._disk_full("the metrics of the epochs kept"), atomic_path(self.path) as tmp:
            with open(tmp, "w") as f:
                f.writelines(keep)

    def append(self, row: dict) -> None:
        # A line cut by a full disk is skipped when read back (`truncate_after`).
        with self._disk_full(f"the metrics of epoch {row.get('epoch')}"), open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()

    def _disk_full(self, what: str):
        return disk_full_as_one_line(os.path.dirname(os.path.abspath(self.path)),
                                     f"{what} ({os.path.basename(self.path)})")


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
            raise ConfigError("train.tensorboard=True needs tensorboardX: pip install -r requirements.txt") from None
        self.writer = SummaryWriter(logdir)

    def log_epoch(self, row: dict) -> None:
        losses = np.asarray([np.nan if x is None else x for x in row["loss"]], float)
        epoch = row["epoch"]
        if np.isfinite(losses).any():
            self.writer.add_scalar("loss/mean_over_members", float(np.nanmean(losses)), epoch)
        for index, loss in zip(row["members"], losses, strict=True):
            if np.isfinite(loss):
                self.writer.add_scalar(f"loss/member_{index:03d}", float(loss), epoch)
        rates = row["learning_rate"]
        if isinstance(rates, list):   # a sweep's members have rates of their own
            for index, rate in zip(row["members"], rates, strict=True):
                self.writer.add_scalar(f"learning_rate/member_{index:03d}", rate, epoch)
        else:
            self.writer.add_scalar("learning_rate", rates, epoch)
        self.writer.add_scalar("epoch_seconds", row["epoch_seconds"], epoch)
        self.writer.flush()
