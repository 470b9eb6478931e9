"""A model registry: a folder of named models, each with numbered versions and a stage.

Layout::

    REGISTRY/
      NAME/
        registry.json        versions (number, stage, added, source, task, metrics) + history
        versions/1/          a complete artifact folder (copied in on ``add``)
        versions/2/

Stages: ``staging`` (added, not served), ``production`` (served; at most one version per
name), ``archived``. ``promote`` makes a version production and archives the former one;
``rollback`` brings the previous production version back. ``registry.json`` is replaced in
one ``os.replace`` under an exclusive file lock, so a serving process that re-reads it
sees either the old or the new state, never half of one. Names are checked so that no name
can point outside the registry folder.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import os
import re
import shutil
from pathlib import Path

from ..artifact import is_artifact, read_manifest
from ..core.errors import DomainfitError
from ..core.io import atomic_write_text, staged_folder

__all__ = ["Registry", "STAGES", "check_name"]

STAGES = ("staging", "production", "archived")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
STATE = "registry.json"


def check_name(name: str) -> str:
    """A model name: letters, digits, ``_ . -``, at most 64, not starting with a dot (so it can
    never be ``..`` or a path)."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise DomainfitError(f"invalid model name {name!r}: use letters, digits, '_', '.', '-' (at most 64, "
                             "starting with a letter or digit)")
    return name


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class Registry:
    """Operations on a registry folder (created on first ``add``)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _folder(self, name: str) -> Path:
        folder = (self.root / check_name(name)).resolve()
        if folder.parent != self.root.resolve():
            raise DomainfitError(f"invalid model name {name!r}")
        return folder

    def state_file(self, name: str) -> Path:
        """The file that holds ``name``'s versions and stages (``registry.json``): a server
        watches its modification time to pick up promotions."""
        return self._folder(name) / STATE

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / STATE).is_file())

    def state(self, name: str) -> dict:
        path = self._folder(name) / STATE
        if not path.is_file():
            known = ", ".join(self.names()) or "none"
            raise DomainfitError(f"no model named {name!r} in {self.root} (models: {known})")
        return json.loads(path.read_text(encoding="utf-8"))

    def production(self, name: str) -> tuple[int, Path] | None:
        """The production version and its folder, or None."""
        for v in self.state(name)["versions"]:
            if v["stage"] == "production":
                return v["version"], self._folder(name) / "versions" / str(v["version"])
        return None

    def version_path(self, name: str, version: int) -> Path:
        self._version(self.state(name), version)
        return self._folder(name) / "versions" / str(version)

    @contextlib.contextmanager
    def _locked(self, name: str):
        folder = self._folder(name)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield folder
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write(self, folder: Path, state: dict) -> None:
        atomic_write_text(folder / STATE, json.dumps(state, indent=2) + "\n")

    @staticmethod
    def _version(state: dict, version: int) -> dict:
        for v in state["versions"]:
            if v["version"] == version:
                return v
        listed = ", ".join(str(v["version"]) for v in state["versions"]) or "none"
        raise DomainfitError(f"no version {version} (versions: {listed})")

    def add(self, name: str, artifact: str | Path, stage: str = "staging") -> int:
        """Copy an artifact in as the next version; returns its number."""
        if stage not in STAGES:
            raise DomainfitError(f"stage must be one of {', '.join(STAGES)}, got {stage!r}")
        if not is_artifact(artifact):
            raise DomainfitError(f"{artifact} is not a domainfit model folder (no domainfit.json)")
        manifest = read_manifest(artifact)
        with self._locked(name) as folder:
            path = folder / STATE
            state = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"name": name,
                                                                                          "versions": [], "history": []}
            version = max((v["version"] for v in state["versions"]), default=0) + 1
            versions = folder / "versions"
            versions.mkdir(exist_ok=True)
            with staged_folder(versions / str(version)) as staging:
                shutil.copytree(artifact, staging, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("checkpoints", "run.json", ".*"))
            state["versions"].append({"version": version, "stage": "staging", "added": _now(),
                                      "source": str(artifact), "task": manifest.get("task"),
                                      "metrics": manifest.get("metrics", {})})
            self._write(folder, state)
        if stage == "production":
            self.promote(name, version)
        elif stage == "archived":
            self._set_stage(name, version, "archived")
        return version

    def _set_stage(self, name: str, version: int, stage: str) -> None:
        with self._locked(name) as folder:
            state = self.state(name)
            self._version(state, version)["stage"] = stage
            self._write(folder, state)

    def promote(self, name: str, version: int) -> dict:
        """Make ``version`` production (the former production version is archived)."""
        with self._locked(name) as folder:
            state = self.state(name)
            target = self._version(state, version)
            previous = next((v for v in state["versions"] if v["stage"] == "production"), None)
            if previous is target:
                return target
            if previous is not None:
                previous["stage"] = "archived"
            target["stage"] = "production"
            state["history"].append({"at": _now(), "action": "promote", "version": version,
                                     "previous": previous["version"] if previous else None})
            self._write(folder, state)
            return target

    def rollback(self, name: str) -> dict:
        """Bring back the version that was production before the current one."""
        with self._locked(name) as folder:
            state = self.state(name)
            current = next((v for v in state["versions"] if v["stage"] == "production"), None)
            previous = None
            for event in reversed(state["history"]):
                if current is not None and event["version"] == current["version"] and event.get("previous"):
                    previous = event["previous"]
                    break
            if current is None or previous is None:
                raise DomainfitError(f"{name} has no earlier production version to roll back to")
            target = self._version(state, previous)
            current["stage"] = "archived"
            target["stage"] = "production"
            state["history"].append({"at": _now(), "action": "rollback", "version": previous,
                                     "previous": current["version"]})
            self._write(folder, state)
            return target

    def remove(self, name: str, version: int | None = None) -> None:
        """Remove one version (never the production one), or a whole model with no production version."""
        with self._locked(name) as folder:
            state = self.state(name)
            if version is None:
                if any(v["stage"] == "production" for v in state["versions"]):
                    raise DomainfitError(f"{name} has a production version; archive it (promote another) first")
                doomed = folder.with_name(f".{name}.removed")
                os.replace(folder, doomed)
                shutil.rmtree(doomed, ignore_errors=True)
                return
            entry = self._version(state, version)
            if entry["stage"] == "production":
                raise DomainfitError(f"version {version} of {name} is in production; promote another version first")
            state["versions"].remove(entry)
            self._write(folder, state)
            shutil.rmtree(folder / "versions" / str(version), ignore_errors=True)

    def listing(self) -> list[dict]:
        """Every version of every model: name, version, stage, task, added."""
        rows = []
        for name in self.names():
            for v in self.state(name)["versions"]:
                rows.append({"name": name, **{k: v.get(k) for k in ("version", "stage", "task", "added")}})
        return rows
