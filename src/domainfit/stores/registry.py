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

A version is checked (:func:`domainfit.artifact.verify_artifact`: manifest, files, sha256)
before it is copied in, and again before it becomes production (``promote``, ``rollback``,
``add --stage production``): a broken one raises :class:`RegistryConflict` and nothing
changes. Only ``add`` creates folders. Entries that cannot be read (a corrupt
``registry.json``) are left out of :meth:`Registry.names` and reported by
:meth:`Registry.problems`, so that one bad entry never hides the others; folders whose names
start with a dot (a ``remove`` cut short) are ignored.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import os
import re
import shutil
import uuid
from pathlib import Path

from ..artifact import is_artifact, verify_artifact
from ..core.errors import DomainfitError, ManifestError, RegistryConflict, RegistryError
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


def _user() -> str:
    """Who runs this process, for the history (``DOMAINFIT_USER`` overrides the login name)."""
    import getpass

    try:
        return os.environ.get("DOMAINFIT_USER") or getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (e.g. in a container)
        return "unknown"


def _parse_state(name: str, path: Path) -> dict:
    """``registry.json`` of ``name``, checked for the fields the registry relies on."""
    def corrupt(why: str) -> RegistryError:
        return RegistryError(f"{path} (model {name!r}) is corrupt: {why}. Restore it from a backup, or remove the "
                             f"folder {path.parent} to drop the model.")

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise corrupt("it is not UTF-8 text") from None
    except OSError as exc:
        raise corrupt(f"it cannot be read ({exc.strerror or exc})") from None
    if not text.strip():
        raise corrupt("it is empty")
    try:
        state = json.loads(text)
    except json.JSONDecodeError as exc:
        raise corrupt(f"it is not valid JSON ({exc})") from None
    if not isinstance(state, dict) or not isinstance(state.get("versions"), list):
        raise corrupt("it holds no list of versions")
    for v in state["versions"]:
        if not (isinstance(v, dict) and type(v.get("version")) is int and v.get("stage") in STAGES):
            raise corrupt(f"a version entry is malformed ({str(v)[:80]})")
    history = state.setdefault("history", [])
    if not isinstance(history, list) or not all(isinstance(e, dict) for e in history):
        raise corrupt("its history is not a list of events")
    return state


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

    def entries(self) -> tuple[list[str], dict[str, str]]:
        """:meth:`names` and :meth:`problems` from one read of the registry (a server's poll)."""
        names, problems = [], {}
        if not self.root.is_dir():
            return names, problems
        for p in sorted(self.root.iterdir()):
            if p.name.startswith(".") or not _NAME.match(p.name) or ".." in p.name or not (p / STATE).is_file():
                continue  # leftovers (.NAME.removed), stray files, a model being added
            try:
                _parse_state(p.name, p / STATE)
            except (RegistryError, OSError) as exc:
                problems[p.name] = str(exc)
                continue
            names.append(p.name)
        return names, problems

    def names(self) -> list[str]:
        """The models of the registry whose entry reads (see :meth:`problems` for the others)."""
        return self.entries()[0]

    def problems(self) -> dict[str, str]:
        """Models whose entry cannot be read, each with a message saying why (a corrupt
        ``registry.json``); a server reports them and serves the others.

        Example:
            >>> Registry("models").problems()                          # doctest: +SKIP
            {'intents': "models/intents/registry.json (model 'intents') is corrupt: it is empty. ..."}
        """
        return self.entries()[1]

    def state(self, name: str) -> dict:
        """``name``'s versions and history (``registry.json``).

        Raises:
            RegistryError: no such model (code ``unknown_model``, 404), or its file is
                corrupt (``corrupt_registry``, 409).
        """
        path = self._folder(name) / STATE
        if not path.is_file():
            known = ", ".join(self.names()) or "none"
            raise RegistryError(f"no model named {name!r} in {self.root} (models: {known})", "unknown_model", 404)
        return _parse_state(name, path)

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
    def _locked(self, name: str, create: bool = False):
        """Hold ``name``'s lock. Only ``create`` (an ``add``) makes the model's folder; for
        anything else an unknown name fails before anything is written."""
        folder = self._folder(name)
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        else:
            self.state(name)  # raises for an unknown name
        with open(folder / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield folder
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write(self, folder: Path, state: dict) -> None:
        atomic_write_text(folder / STATE, json.dumps(state, indent=2) + "\n")

    def _check_servable(self, name: str, version: int, path: Path | None = None) -> None:
        """Raise :class:`RegistryConflict` unless ``version``'s folder (or ``path``, its copy
        being staged) is a whole artifact."""
        path = path or self._folder(name) / "versions" / str(version)
        try:
            verify_artifact(path)
        except ManifestError as exc:
            raise RegistryConflict(f"version {version} of {name} is broken, so it is not made production: {exc} "
                                   f"({STATE} is unchanged)") from None

    @staticmethod
    def _version(state: dict, version: int) -> dict:
        for v in state["versions"]:
            if v["version"] == version:
                return v
        listed = ", ".join(str(v["version"]) for v in state["versions"]) or "none"
        raise DomainfitError(f"no version {version} (versions: {listed})")

    def add(self, name: str, artifact: str | Path, stage: str = "staging") -> int:
        """Copy an artifact in as the next version; returns its number.

        The artifact is checked first (:func:`~domainfit.artifact.verify_artifact`): a
        broken one changes nothing (no folder, no ``registry.json`` entry).

        With ``stage="production"`` the copy is checked too, before ``registry.json``
        changes, so the new version is served whole or not added at all.

        Raises:
            ManifestError: the artifact is broken (named file). RegistryError: the model's
                ``registry.json`` is corrupt. RegistryConflict: ``stage="production"`` and the
                copy does not verify (nothing added).
        """
        if stage not in STAGES:
            raise DomainfitError(f"stage must be one of {', '.join(STAGES)}, got {stage!r}")
        self._folder(name)  # a bad name fails before anything is read
        if not is_artifact(artifact):
            raise DomainfitError(f"{artifact} is not a domainfit model folder (no domainfit.json)")
        manifest = verify_artifact(artifact)
        existed = self._folder(name).exists()
        try:
            version = self._add_version(name, artifact, manifest, verify_copy=stage == "production")
        except BaseException:
            folder = self._folder(name)
            if not existed and not (folder / STATE).is_file():  # a new model whose first add failed
                shutil.rmtree(folder, ignore_errors=True)
            raise
        if stage == "production":
            self._promote(name, version, verified=True)
        elif stage == "archived":
            self._set_stage(name, version, "archived")
        return version

    def _add_version(self, name: str, artifact: str | Path, manifest: dict, verify_copy: bool) -> int:
        with self._locked(name, create=True) as folder:
            path = folder / STATE
            state = self.state(name) if path.is_file() else {"name": name, "versions": [], "history": []}
            version = max((v["version"] for v in state["versions"]), default=0) + 1
            versions = folder / "versions"
            versions.mkdir(exist_ok=True)
            with staged_folder(versions / str(version)) as staging:
                shutil.copytree(artifact, staging, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("checkpoints", "run.json", ".*"))
                if verify_copy:
                    self._check_servable(name, version, staging)
            state["versions"].append({"version": version, "stage": "staging", "added": _now(),
                                      "source": str(artifact), "task": manifest.get("task"),
                                      "metrics": manifest.get("metrics", {})})
            self._write(folder, state)
        return version

    def _set_stage(self, name: str, version: int, stage: str) -> None:
        with self._locked(name) as folder:
            state = self.state(name)
            self._version(state, version)["stage"] = stage
            self._write(folder, state)

    def promote(self, name: str, version: int, *, by: str | None = None, reason: str | None = None) -> dict:
        """Make ``version`` production (the former production version is archived). The
        history (the audit log in ``registry.json``) records when, ``by`` whom (default: the
        user running this) and why (``reason``).

        Raises:
            RegistryConflict: the version's folder does not verify; nothing changed.
        """
        return self._promote(name, version, verified=False, by=by, reason=reason)

    def _promote(self, name: str, version: int, verified: bool, by: str | None = None,
                 reason: str | None = None) -> dict:
        with self._locked(name) as folder:
            state = self.state(name)
            target = self._version(state, version)
            previous = next((v for v in state["versions"] if v["stage"] == "production"), None)
            if previous is target:
                return target
            if not verified:
                self._check_servable(name, version)
            if previous is not None:
                previous["stage"] = "archived"
            target["stage"] = "production"
            state["history"].append({"at": _now(), "action": "promote", "version": version,
                                     "previous": previous["version"] if previous else None,
                                     "by": by or _user(), "reason": reason})
            self._write(folder, state)
            return target

    def rollback(self, name: str, *, by: str | None = None, reason: str | None = None) -> dict:
        """Bring back the version that was production before the current one (recorded in
        the history like a promotion).

        Raises:
            RegistryConflict: that version's folder does not verify; nothing changed.
        """
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
            self._check_servable(name, previous)
            current["stage"] = "archived"
            target["stage"] = "production"
            state["history"].append({"at": _now(), "action": "rollback", "version": previous,
                                     "previous": current["version"], "by": by or _user(), "reason": reason})
            self._write(folder, state)
            return target

    def remove(self, name: str, version: int | None = None) -> None:
        """Remove one version (never the production one), or a whole model with no production version."""
        with self._locked(name) as folder:
            state = self.state(name)
            if version is None:
                if any(v["stage"] == "production" for v in state["versions"]):
                    raise DomainfitError(f"{name} has a production version; archive it (promote another) first")
                # a unique name: a leftover of an earlier remove cut short must not block this one
                doomed = folder.with_name(f".{name}.removed-{uuid.uuid4().hex[:8]}")
                os.replace(folder, doomed)
                shutil.rmtree(doomed, ignore_errors=True)
                return
            entry = self._version(state, version)
            if entry["stage"] == "production":
                raise DomainfitError(f"version {version} of {name} is in production; promote another version first")
            state["versions"].remove(entry)
            self._write(folder, state)
            shutil.rmtree(folder / "versions" / str(version), ignore_errors=True)

    def history(self, name: str) -> list[dict]:
        """``name``'s promotions and rollbacks, oldest first: when (``at``), ``action``,
        ``version``, ``previous``, ``by`` and ``reason``."""
        return list(self.state(name).get("history", []))

    def listing(self) -> list[dict]:
        """Every version of every model whose entry reads (see :meth:`problems`): name,
        version, stage, task, added."""
        rows = []
        for name in self.names():
            try:
                versions = self.state(name)["versions"]
            except RegistryError:  # removed or broken since names() read it
                continue
            for v in versions:
                rows.append({"name": name, **{k: v.get(k) for k in ("version", "stage", "task", "added")}})
        return rows
