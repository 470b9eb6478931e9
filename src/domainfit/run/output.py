"""The output folder of a run: may it be used, is it a run to resume, and its bookkeeping.

A training run writes into its output folder as it goes (``run.json``, ``metrics.jsonl``,
``checkpoints/``); the artifact's files are moved in at the end, manifest last, and the
bookkeeping is removed. The same command run again on an unfinished folder resumes it, but
only with the same configuration and data (their ``signature``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from ..artifact import is_artifact
from ..core.config import RunConfig
from ..core.errors import ConfigError, DomainfitError
from ..core.io import atomic_write_text
from ..training.tracking import TRACKING_FILE

__all__ = ["signature", "check_output", "mark_running", "clear_run_files", "RUN_FILE"]

RUN_FILE = "run.json"


def signature(cfg: RunConfig, fingerprints: list[str]) -> str:
    """What must be equal for an unfinished run to be resumed: the config and the data."""
    body = json.dumps({"config": cfg.to_dict(), "data": fingerprints}, sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def check_output(out: Path, signature: str, resume: str, overwrite: bool) -> None:
    """Apply the resume/overwrite policy to the output folder.

    Raises:
        DomainfitError: the folder holds a model, other files, or a different unfinished run;
            or it holds an unfinished run and ``resume`` is ``never``.
    """
    if resume not in ("auto", "never"):
        raise ConfigError(f"--resume must be 'auto' or 'never', got {resume!r}.")
    if not out.exists() or not any(out.iterdir()):
        return
    if overwrite:
        shutil.rmtree(out)
        return
    if is_artifact(out):
        raise DomainfitError(f"{out} already holds a trained model. Choose another --output, or pass --overwrite.")
    run_file = out / RUN_FILE
    if not run_file.is_file():
        raise DomainfitError(f"{out} is not empty and is not a domainfit run. Choose another --output, "
                             "or pass --overwrite to replace its contents.")
    if resume == "never":
        raise DomainfitError(f"{out} holds an unfinished run. Re-run with --resume auto to continue it, "
                             "or --overwrite to start again.")
    previous = json.loads(run_file.read_text(encoding="utf-8")).get("signature")
    if previous != signature:
        raise DomainfitError(f"{out} holds an unfinished run with a different configuration or data. "
                             "Re-run with the same settings to resume, or pass --overwrite to start again.")


def mark_running(out: Path, signature: str) -> None:
    """Create the folder and record the run's signature (so that it can be resumed)."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / RUN_FILE, json.dumps({"signature": signature, "status": "running"}))


def clear_run_files(out: Path) -> None:
    """Remove what only an unfinished run needs (checkpoints, ``run.json``, the MLflow run to continue)."""
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    (out / RUN_FILE).unlink(missing_ok=True)
    (out / TRACKING_FILE).unlink(missing_ok=True)
