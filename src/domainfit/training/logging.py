"""Progress and logs of a run: a rich progress bar on a terminal, plain progress lines
elsewhere (CI, ``nohup``, a log file), ``metrics.jsonl``, and the run's tracker (TensorBoard
or MLflow, :mod:`.tracking`). Each validation result is shown as a line of its own either way."""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..core.io import atomic_write_text
from ..core.ui import console
from .tracking import Tracker, eval_metrics, train_metrics

__all__ = ["RunLogger"]

LOG_EVERY = 10
PLAIN_EVERY_SECONDS = 30.0
"""Without a terminal, a progress line at least this often (and at every tenth of the run)."""


class RunLogger:
    """Writes one JSON line per ``LOG_EVERY`` steps (and at the last step) and per evaluation,
    sends the same points to ``tracker`` (``train/loss``, ``train/learning_rate``,
    ``train/epoch``; ``eval/<metric>``), and drives the bar. The tracker is its opener's to close.

    ``metrics.jsonl`` lines: ``{"step", "total", "epoch", "loss", "lr", "examples_per_s"}`` for
    training and ``{"step", "epoch", "val_<metric>", "best"}`` for validation.
    """

    def __init__(self, run_dir: Path, enabled: bool, total: int, start: int = 0, *, metric: str = "score",
                 patience: int | None = None, plain: bool | None = None, tracker: Tracker | None = None):
        self.enabled = enabled
        self.path = run_dir / "metrics.jsonl"
        self.total, self.metric, self.patience = total, metric, patience
        self.plain = not (console.is_terminal or console.is_jupyter) if plain is None else plain
        self._losses: list[float] = []
        self._examples = 0
        self._seconds = 0.0
        self.tracker = tracker if tracker is not None else Tracker()
        self._progress = None
        self._started = time.perf_counter()
        self._start_step = start
        self._last_line = self._started
        self._last_tenth = (10 * start) // max(total, 1)
        self._recent_loss, self._recent_speed = None, None
        if not enabled:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        if self.plain:
            return
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
        self._recent_loss, self._recent_speed = info["loss"], speed
        if self.plain:
            self._plain_line(step, info["epoch"])
        else:
            self._progress.update(self._task, completed=step, loss=f"{info['loss']:.4f}", speed=f"{speed:.0f}")
        if step % LOG_EVERY == 0 or step == self.total:  # the last point too: a short run has a curve
            loss = sum(self._losses) / len(self._losses)
            self._write({"step": step, "total": self.total, "epoch": round(info["epoch"], 4), "loss": loss,
                         "lr": info["lr"], "examples_per_s": speed, "time": time.time()})
            self.tracker.log_metrics(train_metrics(loss, info["lr"], round(info["epoch"], 4)), step)
            self._losses, self._examples, self._seconds = [], 0, 0.0

    def _plain_line(self, step: int, epoch: float) -> None:
        """A progress line when there is no terminal: every tenth of the run, or after
        ``PLAIN_EVERY_SECONDS``, and at the last step."""
        now = time.perf_counter()
        tenth = (10 * step) // max(self.total, 1)
        if not (tenth > self._last_tenth or now - self._last_line >= PLAIN_EVERY_SECONDS or step >= self.total):
            return
        self._last_tenth, self._last_line = tenth, now
        done = step - self._start_step
        left = (now - self._started) / done * (self.total - step) if done > 0 else 0.0
        console.print(f"step {step}/{self.total} ({100 * step / max(self.total, 1):.0f}%) epoch {epoch:.2f} "
                      f"loss {self._recent_loss:.4f} {self._recent_speed:.0f} ex/s ETA {_clock(left)}",
                      markup=False, highlight=False)

    def eval(self, record: dict) -> None:
        if not self.enabled:
            return
        self._show_eval(record)
        self._write(dict(record, time=time.time()))
        self.tracker.log_metrics(eval_metrics(record, prefix="val_"), record["step"])

    def _show_eval(self, record: dict) -> None:
        """One line per validation: the metric, the best so far, and early stopping's patience
        left; under the bar on a terminal."""
        score, best = record.get(f"val_{self.metric}"), record.get("best")
        if not isinstance(score, (int, float)):
            return
        line = f"validation at step {record['step']} (epoch {record['epoch']:g}): {self.metric} {score:.4f}"
        if isinstance(best, (int, float)):
            line += f", best {best:.4f}"
        if self.patience:
            left = record.get("patience_left")
            if left is not None:
                line += f", early stopping after {left} more without improvement"
        (console if self._progress is None else self._progress.console).print(line, markup=False, highlight=False)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
