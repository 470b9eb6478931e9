"""Model folders as runs: found under a root, read with their training log, compared.

A model folder is recognised by its manifest (``domainfit.json``) and read through
:func:`~domainfit.artifact.read_manifest`, which checks it; its ``metrics.jsonl`` (the
training log, kept in the folder) gives the learning curves. The comparison itself is
:mod:`domainfit.evaluation.runs`.

Example:
    >>> [r.name for r in list_runs("models")]                                    # doctest: +SKIP
    ['intents-full', 'intents-lora']
    >>> write_comparison(compare_runs(["models/intents-full", "models/intents-lora"]), "cmp.html")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..core.errors import DomainfitError, ManifestError
from ..core.ui import escape, say
from ..evaluation.runs import Comparison, RunSummary, compare, summarize_run
from .folder import is_artifact, read_manifest
from .manifest import MANIFEST

__all__ = ["find_models", "read_run", "list_runs", "compare_runs", "TRAINING_LOG"]

TRAINING_LOG = "metrics.jsonl"


def find_models(root: str | Path) -> list[Path]:
    """The model folders at and under ``root`` (not inside one another; hidden folders are
    skipped), in path order.

    Raises:
        DomainfitError: ``root`` is missing or not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise DomainfitError(f"{root} does not exist." if not root.exists() else f"{root} is not a folder.")
    found = []
    for folder, subfolders, files in os.walk(root):
        if MANIFEST in files:
            found.append(Path(folder))
            subfolders[:] = []  # a model's own folders (report/, index/...) hold no other model
            continue
        subfolders[:] = sorted(d for d in subfolders if not d.startswith(".") and d != "__pycache__")
    return sorted(found)


def _log(folder: Path) -> list[dict]:
    """The records of ``metrics.jsonl``; a line that is not a JSON object is passed over."""
    path = folder / TRAINING_LOG
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def read_run(folder: str | Path, name: str | None = None) -> RunSummary:
    """A model folder as a run (shown as ``name``, by default the folder as given).

    Raises:
        ManifestError: not a model folder, or its manifest is bad (named in the message).
    """
    folder = Path(folder)
    if folder.is_dir() and not is_artifact(folder):
        hint = (" It holds an unfinished training run." if (folder / "checkpoints").exists() else
                " To find the model folders under it: domainfit runs list " + str(folder))
        raise ManifestError(f"{folder} is not a domainfit model folder (no {MANIFEST}).{hint}")
    manifest = read_manifest(folder)
    return summarize_run(name or str(folder), str(folder), manifest, _log(folder))


def list_runs(root: str | Path) -> list[RunSummary]:
    """Every model folder under ``root`` as a run, oldest first, named by its path below
    ``root``; a folder whose manifest cannot be read is left out with a warning.

    Raises:
        DomainfitError: ``root`` is missing or not a folder.
    """
    root = Path(root)
    runs = []
    for folder in find_models(root):
        try:
            runs.append(read_run(folder, folder.relative_to(root).as_posix()))
        except ManifestError as exc:
            say(f"[yellow]warning:[/] left out: {escape(str(exc))}")
    return sorted(runs, key=lambda r: (r.created_at, r.name))


def compare_runs(folders: list[str | Path]) -> Comparison:
    """The runs of ``folders`` side by side (:func:`domainfit.evaluation.runs.compare`).

    Raises:
        DomainfitError: no folder given, or one that is not a model folder.
    """
    if not folders:
        raise DomainfitError("Name at least one model folder to compare.")
    return compare([read_run(f, name) for f, name in zip(folders, _names(folders))])


def _names(folders: list[str | Path]) -> list[str]:
    """Each folder by its path below the folder they all share (``a/full``, ``b/lora``), or
    as given when that does not tell them apart."""
    given = [str(f) for f in folders]
    try:
        common = Path(os.path.commonpath([os.path.abspath(f) for f in given]))
        short = [Path(os.path.abspath(f)).relative_to(common).as_posix() for f in given]
    except ValueError:  # different drives
        return given
    if len(given) == 1:
        return [Path(os.path.abspath(given[0])).name or given[0]]
    return short if "." not in short and len(set(short)) == len(short) else given
