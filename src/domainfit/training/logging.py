"""Progress and logs of a run: a rich progress bar, ``metrics.jsonl`` and TensorBoard."""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..core.io import atomic_write_text
from ..core.ui import console

__all__ = ["RunLogger"]

LOG_EVERY = 10


class RunLogger:
    """Writes one JSON line per ``LOG_EVERY`` steps and per evaluation, and drives the bar.

    ``metrics.jsonl`` lines: ``{"step", "epoch", "loss", "lr", "examples_per_s"}`` for
    training and ``{"step", "epoch", "val_<metric>", "best"}`` for validation.
    """

    def __init__(self, run_dir: Path, enabled: bool, total: int, start: int = 0):
        self.enabled = enabled
        self.path = run_dir / "metrics.jsonl"
        self._losses: list[float] = []
        self._examples = 0
        self._seconds = 0.0
        self._tb = None
        self._progress = None
        if not enabled:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(run_dir / "tensorboard"))
        except Exception:  # tensorboard not installed: JSONL only
            self._tb = None
        self._progress = Progress(
            TextColumn("[bold]training"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
            TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[speed]} ex/s"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), transient=False,
            console=console,  # stderr: stdout stays for data (e.g. `evaluate --json`)
        )
        self._task = self._progress.add_task("train", total=total, completed=start, loss="-", speed="-")
        self._progress.start()

    def truncate_after(self, step: int) -> None:
        """Drop log lines written after ``step`` (a resumed run writes them again)."""
        if not self.enabled or not self.path.exists():
            return
        kept = [ln for ln in self.path.read_text(encoding="utf-8").splitlines()
                if ln.strip() and json.loads(ln).get("step", 0) <= step]
        atomic_write_text(self.path, "".join(ln + "\n" for ln in kept))

    def _write(self, record: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")

    def step(self, step: int, info: dict) -> None:
        if not self.enabled:
            return
        self._losses.append(info["loss"])
        self._examples += info["examples"]
        self._seconds += info["seconds"]
        speed = self._examples / max(self._seconds, 1e-9)
        self._progress.update(self._task, completed=step, loss=f"{info['loss']:.4f}", speed=f"{speed:.0f}")
        if step % LOG_EVERY == 0:
            loss = sum(self._losses) / len(self._losses)
            self._write({"step": step, "epoch": round(info["epoch"], 4), "loss": loss, "lr": info["lr"],
                         "examples_per_s": speed, "time": time.time()})
            if self._tb is not None:
                self._tb.add_scalar("train/loss", loss, step)
                self._tb.add_scalar("train/lr", info["lr"], step)
            self._losses, self._examples, self._seconds = [], 0, 0.0

    def eval(self, record: dict) -> None:
        if not self.enabled:
            return
        self._write(dict(record, time=time.time()))
        if self._tb is not None:
            for key, value in record.items():
                if key.startswith("val_") and isinstance(value, (int, float)):
                    self._tb.add_scalar(f"val/{key[4:]}", value, record["step"])

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
        if self._tb is not None:
            self._tb.close()
