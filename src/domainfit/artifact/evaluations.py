"""The evaluations an artifact has had since training: each in its own folder under
``MODEL/evaluations/`` with its report and an ``evaluation.json`` (data, its sha256, rows,
time, headline metrics); the training run's ``report/`` is never replaced. Reading them
needs no model library (``domainfit info``)."""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

__all__ = ["EVALUATIONS", "evaluation_folder", "evaluations"]

EVALUATIONS = "evaluations"
"""The folder of an artifact that holds the reports of later evaluations (the training
run's own ``report/`` is never replaced)."""


def evaluation_folder(model_path: str | Path, data: Any) -> Path:
    """Where an evaluation of ``data`` writes its report by default:
    ``MODEL/evaluations/<data name>-<UTC time>/``."""
    stem = Path(data).stem if isinstance(data, (str, Path)) else "data"
    stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in stem)[:60] or "data"
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    folder = Path(model_path) / EVALUATIONS / f"{stem}-{stamp}"
    n = 2
    while folder.exists():
        folder = folder.with_name(f"{stem}-{stamp}-{n}")
        n += 1
    return folder


def evaluations(model_path: str | Path) -> list[dict]:
    """The evaluations recorded in an artifact, oldest first: their folder, data, data
    fingerprint, rows, time and headline metrics (from each ``evaluation.json``)."""
    rows = []
    for path in sorted((Path(model_path) / EVALUATIONS).glob("*/evaluation.json")):
        try:
            rows.append({"folder": str(path.parent), **json.loads(path.read_text(encoding="utf-8"))})
        except (OSError, json.JSONDecodeError):
            continue
    return sorted(rows, key=lambda r: r.get("at", ""))
