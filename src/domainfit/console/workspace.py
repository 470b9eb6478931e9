"""The console's root folder: where uploads, runs, exports, the registry and the console's
own records live, and the one check that keeps every path a page names inside it.

::

    ROOT/
      data/          uploaded files (any data file elsewhere under the root can be picked too)
      runs/          models trained from the console (one folder per run)
      exports/       ONNX exports
      registry/      the model registry the console serves and promotes in
      apps/          app bundles (customer service, monitoring...) linked from the console
      .console/      console.db (jobs, review queue, feedback), job logs, the session secret
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import DomainfitError

__all__ = ["Workspace", "ConsoleError", "DATA_SUFFIXES"]

DATA_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet", ".txt")
_SKIPPED = {".console", "runs", "exports", "registry", "apps", "__pycache__"}
_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class ConsoleError(DomainfitError):
    """A request the console cannot do, with the HTTP status to answer and a message for
    the page."""

    def __init__(self, message: str, status: int = 400, code: str = "bad_request"):
        super().__init__(message)
        self.status, self.code = status, code


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def open(cls, root: str | Path) -> "Workspace":
        """The workspace at ``root``, its folders created if missing."""
        path = Path(root).expanduser().resolve()
        if path.exists() and not path.is_dir():
            raise DomainfitError(f"--root {root} is a file, not a folder.")
        for part in ("data", "runs", "exports", "registry", "apps", ".console/jobs"):
            (path / part).mkdir(parents=True, exist_ok=True)
        return cls(path)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def exports(self) -> Path:
        return self.root / "exports"

    @property
    def registry(self) -> Path:
        return self.root / "registry"

    @property
    def apps(self) -> Path:
        return self.root / "apps"

    @property
    def state(self) -> Path:
        """The console's own records (``.console/``)."""
        return self.root / ".console"

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.root / '.console' / 'console.db'}"

    def job_folder(self, job_id: int) -> Path:
        return self.root / ".console" / "jobs" / str(job_id)

    def secret(self) -> bytes:
        """The key that signs the console's cookies and form tokens (made once, kept in the root)."""
        path = self.root / ".console" / "secret"
        if not path.is_file():
            path.write_text(secrets.token_hex(32))
            path.chmod(0o600)
        return bytes.fromhex(path.read_text().strip())

    def resolve(self, relative: str) -> Path:
        """``relative`` (a path a page sent) as a path inside the root.

        Raises:
            ConsoleError: 400 for a path outside the root (``..``, absolute, a symlink out).
        """
        if not relative or "\0" in relative:
            raise ConsoleError("no file named", 400, "bad_path")
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root) or path == self.root:
            raise ConsoleError(f"{relative!r} is outside the console's root folder; pick a file under "
                               f"{self.root}.", 400, "outside_root")
        return path

    def relative(self, path: Path) -> str:
        return path.resolve().relative_to(self.root).as_posix()

    def data_files(self) -> list[str]:
        """Data files under the root (not inside runs, exports, the registry or apps), by path."""
        found = []
        for path in sorted(self.root.rglob("*")):
            parts = path.relative_to(self.root).parts
            if parts[0] in _SKIPPED or any(p.startswith(".") for p in parts):
                continue
            if path.is_file() and path.suffix.lower() in DATA_SUFFIXES:
                found.append(path.relative_to(self.root).as_posix())
        return found

    def upload_path(self, filename: str) -> Path:
        """Where an upload named ``filename`` is stored: ``data/NAME``, made safe, and not over
        an existing file (``NAME-2.csv``...).

        Raises:
            ConsoleError: 415 for a file type the data loader does not read.
        """
        name = _NAME.sub("-", Path(filename or "").name)
        stem, suffix = Path(name).stem.strip(".-") or "upload", Path(name).suffix.lower()
        if suffix not in DATA_SUFFIXES:
            raise ConsoleError(f"{filename!r}: upload a CSV, TSV, JSONL, JSON or Parquet file (the name ends in "
                               f"{', '.join(DATA_SUFFIXES)}).", 415, "unsupported_file")
        path, n = self.data / f"{stem}{suffix}", 1
        while path.exists():
            n += 1
            path = self.data / f"{stem}-{n}{suffix}"
        return path

    def new_run_name(self, wanted: str, taken: set[str] = frozenset()) -> str:
        """A folder name under ``runs/`` from ``wanted``, made safe, neither an existing folder
        nor one of ``taken`` (the outputs of queued jobs)."""
        base = _NAME.sub("-", wanted).strip(".-")[:60] or "run"
        name, n = base, 1
        while (self.runs / name).exists() or name in taken:
            n += 1
            name = f"{base}-{n}"
        return name
