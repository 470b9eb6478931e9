"""Where a run's numbers go besides ``metrics.jsonl``: TensorBoard, MLflow, or nowhere.

``training.tracking`` (``--tracking``) chooses the backend:

* ``None`` (the default): TensorBoard when the ``tensorboard`` package is installed, else none;
* ``tensorboard``: event files in ``OUTPUT/tensorboard/``;
* ``mlflow``: one MLflow run per training run, in the store ``MLFLOW_TRACKING_URI`` names, else
  in ``sqlite:///<the output folder's parent>/mlflow.db`` (artifacts in ``mlartifacts/`` beside
  it), in the experiment ``MLFLOW_EXPERIMENT_NAME`` (default ``domainfit``);
* ``none``: ``metrics.jsonl`` only.

Metric names are Hugging Face Trainer's (``train/loss``, ``train/learning_rate``,
``train/epoch``, ``eval/<metric>``), so that dashboards made for it show domainfit runs as
they are. A backend's package is imported only when it is used; :func:`check_tracking` says
before any work whether it is installed. A tracking store that fails in the middle of a run
gets one warning and is left alone: it never stops the training.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..core.errors import ConfigError
from ..core.io import atomic_write_text
from ..core.ui import escape, say

__all__ = ["BACKENDS", "TRACKING_FILE", "Tracker", "check_tracking", "open_tracker", "train_metrics", "eval_metrics",
           "mlflow_uri"]

BACKENDS = ("tensorboard", "mlflow", "none")
TRACKING_FILE = "tracking.json"
"""In an unfinished run's folder: the MLflow run to continue when the run resumes."""

_INSTALL = {"mlflow": "pip install 'domainfit[mlflow]'", "tensorboard": "pip install 'domainfit[tensorboard]'"}
_DATABASES = ("sqlite", "postgresql", "mysql", "mssql")


def train_metrics(loss: float, learning_rate: float, epoch: float) -> dict[str, float]:
    """A training log point under Hugging Face's names."""
    return {"train/loss": loss, "train/learning_rate": learning_rate, "train/epoch": epoch}


def eval_metrics(metrics: dict, prefix: str = "") -> dict[str, float]:
    """The numbers of ``metrics`` as ``eval/<name>``; ``prefix`` (``"val_"``) is taken off
    the names that carry it, and names that lack it are left out. Switches and text are dropped.

    Example:
        >>> eval_metrics({"val_accuracy": 0.9, "best": 0.9, "step": 10}, prefix="val_")
        {'eval/accuracy': 0.9}
    """
    return {f"eval/{key[len(prefix):]}": float(value) for key, value in metrics.items()
            if key.startswith(prefix) and isinstance(value, (int, float)) and not isinstance(value, bool)}


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def check_tracking(kind: str | None) -> None:
    """Fail now, before any work, when the backend ``kind`` asks for is not installed.

    Raises:
        ConfigError: an unknown backend, or its package missing (with the pip command).
    """
    if kind is None or kind == "none":
        return
    if kind not in BACKENDS:
        raise ConfigError(f"training.tracking must be {', '.join(BACKENDS)}, got {kind!r}.")
    needed = [kind]
    if kind == "mlflow" and urlsplit(os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:").scheme.split("+")[0] \
            in _DATABASES:
        needed += ["sqlalchemy", "alembic", "sqlparse"]  # MLflow's database store
    missing = [m for m in needed if not _installed(m)]
    if missing:
        raise ConfigError(f"--tracking {kind} needs the {', '.join(missing)} package(s), which are not installed: "
                          f"{_INSTALL[kind]} (or choose --tracking none).")


class Tracker:
    """The ``none`` backend, and what every backend does: each call here does nothing.

    Owned by whoever opened it (:func:`open_tracker`), who closes it; the training loop
    only logs to it.
    """

    backend = "none"

    def begin(self, step: int) -> None:
        """Training starts at ``step`` (above 0 when a run resumes from a checkpoint)."""

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Numbers at an optimizer step, by name (``train/loss``...)."""

    def log_artifacts(self, folder: Path, files: list[Path] = ()) -> None:
        """Keep ``folder`` (as ``<its name>/``) and ``files`` with the run."""

    def record(self) -> dict | None:
        """Where the run was tracked (the manifest's ``tracking`` section), or None."""
        return None

    def close(self, ok: bool = True) -> None:
        """End the run: finished, or failed when ``ok`` is false."""


class TensorBoardTracker(Tracker):
    """Event files in ``RUN/tensorboard``; a resumed run's points after its checkpoint are
    replaced (TensorBoard's ``purge_step``), as ``metrics.jsonl`` lines are."""

    backend = "tensorboard"

    def __init__(self, run_dir: Path, params: dict | None = None):
        self._folder = run_dir / "tensorboard"
        self._params = params
        self._writer = None

    def _open(self, purge_step: int | None = None):
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self._folder), purge_step=purge_step)
        return self._writer

    def begin(self, step: int) -> None:
        # Events from the interrupted session at steps after the checkpoint are dropped; the
        # checkpoint's own step was logged before it was written and is kept.
        writer = self._open(step + 1 if step else None)
        if not step and self._params:
            writer.add_text("config", "```\n" + json.dumps(self._params, indent=2, default=str) + "\n```", 0)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        writer = self._open()
        for name, value in metrics.items():
            writer.add_scalar(name, value, step)

    def close(self, ok: bool = True) -> None:
        if self._writer is not None:
            self._writer.close()


def mlflow_uri(run_dir: Path) -> str:
    """The MLflow store of a run: ``MLFLOW_TRACKING_URI``, else ``mlflow.db`` beside the run's folder."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(run_dir).resolve().parent / 'mlflow.db'}"


def _shown(uri: str) -> str:
    """``uri`` without a user name or password (it goes into the manifest and the run folder)."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


class MlflowTracker(Tracker):
    """One MLflow run, through MLflow's client (the process-wide active run, if the caller
    has one, is left alone). A resumed run continues the MLflow run it started, when the
    store still holds it; points between its checkpoint and the interruption are then logged
    twice (MLflow keeps every point it was sent)."""

    backend = "mlflow"

    def __init__(self, run_dir: Path, *, params: dict | None, name: str, tags: dict | None, resume: bool,
                 resumable: bool):
        import logging

        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        self._uri = mlflow_uri(run_dir)
        if not os.environ.get("MLFLOW_TRACKING_URI"):
            Path(run_dir).resolve().parent.mkdir(parents=True, exist_ok=True)  # where mlflow.db goes
        self._failed = False
        quiet = [logging.getLogger(n) for n in ("mlflow.store.db.utils", "alembic.runtime.migration")]
        levels = [q.level for q in quiet]
        for q in quiet:  # "Creating initial MLflow database tables..." on every new store
            q.setLevel(logging.WARNING)
        try:
            self._client = MlflowClient(tracking_uri=self._uri)
            run = self._continued(run_dir) if resume else None
            new = run is None
            if new:
                run = self._client.create_run(self._experiment(run_dir), run_name=name,
                                              tags={k: str(v) for k, v in (tags or {}).items()})
            self.run_id, self.experiment_id = run.info.run_id, run.info.experiment_id
            if new:
                self._log_params(params or {})
        except MlflowException as exc:
            if getattr(self, "run_id", None):  # created, then refused its parameters
                self._safely("ending the run", self._client.set_terminated, self.run_id, "FAILED")
            raise ConfigError(f"MLflow store {_shown(self._uri)}: {exc}") from None
        finally:
            for q, level in zip(quiet, levels):
                q.setLevel(level)
        if resumable:  # the unfinished run's folder remembers its MLflow run
            atomic_write_text(run_dir / TRACKING_FILE, json.dumps(self.record()))
        say(f"MLflow run {self.run_id} in {escape(_shown(self._uri))}")

    def _continued(self, run_dir: Path):
        saved = run_dir / TRACKING_FILE
        if not saved.is_file():
            return None
        try:
            record = json.loads(saved.read_text(encoding="utf-8"))
            if record.get("tracking_uri") != _shown(self._uri):
                return None
            run = self._client.get_run(record["run_id"])
        except Exception:  # another store, or the run is gone: start a new one
            return None
        if run.info.lifecycle_stage == "deleted":
            return None
        self._client.update_run(run.info.run_id, status="RUNNING")
        return run

    def _experiment(self, run_dir: Path) -> str:
        from mlflow.exceptions import MlflowException

        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or "domainfit"
        found = self._client.get_experiment_by_name(name)
        if found is not None:
            if found.lifecycle_stage == "deleted":
                raise ConfigError(f"the MLflow experiment {name!r} is deleted; restore it, or set "
                                  "MLFLOW_EXPERIMENT_NAME to another name.")
            return found.experiment_id
        # In the default store, artifacts go beside the database rather than into ./mlruns of
        # whichever folder the command ran in.
        location = None if os.environ.get("MLFLOW_TRACKING_URI") else \
            (Path(run_dir).resolve().parent / "mlartifacts").as_uri()
        try:
            return self._client.create_experiment(name, artifact_location=location)
        except MlflowException:  # created meanwhile by another run
            return self._client.get_experiment_by_name(name).experiment_id

    def _log_params(self, params: dict) -> None:
        from mlflow.entities import Param

        # MLflow keeps at most 6,000 characters of a value and takes 100 values per call.
        items = [Param(str(k)[:250], json.dumps(v) if isinstance(v, (list, dict)) else str(v))
                 for k, v in params.items()]
        items = [Param(p.key, p.value if len(p.value) <= 6000 else p.value[:5999] + "…") for p in items]
        for i in range(0, len(items), 100):
            self._client.log_batch(self.run_id, params=items[i:i + 100])

    def _safely(self, what: str, call, *args: Any) -> None:
        if self._failed:
            return
        try:
            call(*args)
        except Exception as exc:  # the store went away: training goes on, metrics.jsonl has it all
            self._failed = True
            say(f"[yellow]warning:[/] MLflow: {what} failed ({escape(str(exc)[:300])}); the run goes on without "
                "MLflow (metrics.jsonl has every point).")

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(name, float(value), now, step) for name, value in metrics.items()]
        self._safely("logging metrics", lambda: self._client.log_batch(self.run_id, metrics=batch))

    def log_artifacts(self, folder: Path, files: list[Path] = ()) -> None:
        def send() -> None:
            if Path(folder).is_dir():
                self._client.log_artifacts(self.run_id, str(folder), Path(folder).name)
            for file in files:
                if Path(file).is_file():
                    self._client.log_artifact(self.run_id, str(file))

        self._safely("storing the report", send)

    def record(self) -> dict:
        return {"backend": "mlflow", "tracking_uri": _shown(self._uri), "experiment_id": self.experiment_id,
                "run_id": self.run_id}

    def close(self, ok: bool = True) -> None:
        self._failed = False  # try to end the run even after a failed log call
        self._safely("ending the run", self._client.set_terminated, self.run_id, "FINISHED" if ok else "FAILED")


def open_tracker(kind: str | None, run_dir: Path, *, params: dict | None = None, name: str | None = None,
                 tags: dict | None = None, resume: bool = False, resumable: bool = True) -> Tracker:
    """The tracker of a run writing into ``run_dir`` (see the module docstring for ``kind``).

    Args:
        params: the run's settings, flat (``{"training.epochs": 3}``), logged once when the run starts.
        name: the run's name in MLflow (default: the folder's name). tags: MLflow tags.
        resume: the run continues from a checkpoint: continue its MLflow run too.
        resumable: the run can be resumed: ``run_dir/tracking.json`` remembers its MLflow run
            (the run's bookkeeping removes it when the model is written).

    Raises:
        ConfigError: the backend's package is missing, or the MLflow store refuses the run.
    """
    check_tracking(kind)
    if kind == "mlflow":
        return MlflowTracker(Path(run_dir), params=params, name=name or Path(run_dir).name, tags=tags, resume=resume,
                             resumable=resumable)
    if kind == "tensorboard" or (kind is None and _installed("tensorboard")):
        return TensorBoardTracker(Path(run_dir), params)
    return Tracker()
