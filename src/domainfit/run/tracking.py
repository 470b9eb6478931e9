"""A training run as the tracking backend sees it (``training.tracking``, see
:mod:`domainfit.training.tracking`): opened with the resolved settings before training, given
the final metrics, the report and the manifest once the model folder is written, and closed
as finished, or failed when the run raised."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..core.config import RunConfig
from ..training.tracking import Tracker, eval_metrics, open_tracker

__all__ = ["tracked", "log_result", "run_params", "tracking_section"]


def run_params(cfg: RunConfig) -> dict:
    """The resolved settings as flat dotted keys, method options included
    (``{"training.epochs": 3, "method.options.r": 8, ...}``)."""
    flat: dict = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict) and value:
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        else:
            flat[prefix] = value

    walk("", cfg.to_dict())
    return flat


@contextmanager
def tracked(cfg: RunConfig, out: Path, *, resume: bool = False, main: bool = True,
            trained: bool = True) -> Iterator[Tracker]:
    """The run's tracker for the block: its settings are logged when it opens; it closes as
    finished, or as failed when the block raises.

    ``main``: false on the other processes of a distributed run (they log nothing).
    ``trained``: false for a model built without the training loop (zero-shot): only MLflow
    is given it (a run with its settings and final metrics), TensorBoard has no curve to show.
    """
    kind = cfg.training.tracking
    if not main or (not trained and kind != "mlflow"):
        kind = "none"
    tracker = open_tracker(kind, out, params=run_params(cfg), name=out.name, resume=resume, resumable=trained,
                           tags={"domainfit.task": cfg.task, "domainfit.method": cfg.method.name,
                                 "domainfit.output": str(out.resolve())})
    try:
        yield tracker
    except BaseException:
        tracker.close(ok=False)
        raise
    tracker.close(ok=True)


def tracking_section(tracker: Tracker) -> dict:
    """The manifest's ``tracking`` section (where the run's MLflow run is), or nothing."""
    record = tracker.record()
    return {"tracking": record} if record else {}


def log_result(tracker: Tracker, out: Path, metrics: dict | None, step: int) -> None:
    """The final metrics (``eval/<metric>`` at the last step: the latest value MLflow shows
    is the final score), then ``report/`` and ``domainfit.json`` as the run's artifacts."""
    if metrics:
        tracker.log_metrics(eval_metrics(metrics), step)
    tracker.log_artifacts(out / "report", [out / "domainfit.json"])
