"""Atomic writes: the one place where files and folders are written so that a crash never
leaves half of one.

* :func:`atomic_file` / :func:`atomic_write_text` / :func:`atomic_write_json`: a file is
  written under a temporary name beside its destination and renamed over it, so readers see
  the old file or the whole new one.
* :func:`staged_folder`: a folder is filled in a temporary folder beside its destination and
  moved into place at the end; on an error the staging folder is removed and the
  destination is untouched.

What is renamed into place is flushed to disk first (``fsync``), and so is the folder that
holds the rename: after a power cut a reader finds the old version or the whole new one,
never a new name over empty or half-written data.

Reading a file that a manifest names goes through :func:`inside`: only a plain name of an
entry inside the folder, never a path, and never a symlink out of the folder.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import ConfigError, ManifestError

__all__ = ["atomic_file", "atomic_write_text", "atomic_write_json", "to_jsonable", "staged_folder",
           "replace_folder", "merge_folder", "fsync_tree", "is_plain_name", "inside"]


def is_plain_name(name: object) -> bool:
    """True for the name of an entry of a folder: not empty, no ``/`` or ``\\``, not ``.``
    or ``..``, no NUL, not absolute (on any platform)."""
    return (isinstance(name, str) and name not in ("", ".", "..") and not any(c in name for c in "/\\\0")
            and not Path(name).is_absolute())


def inside(folder: str | os.PathLike, name: str) -> Path:
    """The path of ``name`` in ``folder``, for a name that a manifest or bundle holds.

    ``name`` must be a plain name (see :func:`is_plain_name`), and the path, with every
    symlink resolved, must still be inside ``folder``: a manifest naming
    ``../other/model.safetensors``, ``/etc/passwd`` or a symlink out of the folder is refused.
    The entry need not exist.

    Raises:
        ManifestError: naming the folder and the name.

    Example:
        >>> inside("my-model", "model.safetensors")                  # doctest: +SKIP
        PosixPath('my-model/model.safetensors')
    """
    folder = Path(folder)
    if not is_plain_name(name):
        raise ManifestError(f"{folder}: {name!r} is not the plain name of a file in the folder (no paths, "
                            "'..' or absolute names).")
    path = folder / name
    try:
        target, root = path.resolve(), folder.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise ManifestError(f"{path} cannot be resolved: {exc}") from None
    if not target.is_relative_to(root):
        raise ManifestError(f"{path} leads outside {folder} (a symlink to {target}); a model folder's "
                            "files must be inside it.")
    return path


def _fsync(path: Path) -> None:
    """Flush a file or folder to disk (folders: where the OS allows opening them)."""
    try:
        flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if path.is_dir() else 0)
        fd = os.open(path, flags)
    except OSError:  # e.g. Windows cannot open a folder
        return
    try:
        os.fsync(fd)
    except OSError:  # a file system without fsync for folders
        pass
    finally:
        os.close(fd)


def fsync_tree(path: str | os.PathLike) -> None:
    """Flush a file, or a folder with everything in it, to disk (before it is renamed into
    place, so that the new name never points at data still in memory)."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        for child in path.iterdir():
            fsync_tree(child)
    if not path.is_symlink():
        _fsync(path)


def _writable_folder(folder: Path, target: Path) -> None:
    """Create ``folder`` if missing; a folder that cannot be made or written is the user's
    to fix (a wrong path, no permission), so it is a ConfigError naming ``target``."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot write {target}: {exc.strerror or exc} ({exc.filename or folder})") from None
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"cannot write {target}: the folder {folder} is not writable")


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` when the block ends
    without an error, delete it otherwise. Missing parent folders are created.

    Raises:
        ConfigError: the folder cannot be created or written to (named, with the reason).

    Example:
        >>> with atomic_file(tmp / "out.csv") as part:          # doctest: +SKIP
        ...     part.write_text("text,label\\n")
    """
    path = Path(path)
    _writable_folder(path.parent, path)
    # A unique name rather than tempfile.mkstemp: mkstemp creates files with mode 0600, and
    # our files should get the usual umask-based permissions.
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        yield tmp
        if tmp.exists():
            fsync_tree(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file (UTF-8) atomically."""
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def to_jsonable(value: Any) -> Any:
    """Numpy types, tuples, sets and paths as JSON types; NaN and infinities become None."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(to_jsonable(v) for v in value)
    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # numpy arrays and scalars
        return to_jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def atomic_write_json(path: str | os.PathLike, data: Any, *, strict: bool = False) -> None:
    """Write ``data`` as indented JSON atomically.

    ``strict``: convert numpy values and write NaN as null (reports); otherwise values JSON
    cannot hold are written with ``str`` (manifests keep paths and the like readable).
    """
    if strict:
        text = json.dumps(to_jsonable(data), indent=2, ensure_ascii=False, allow_nan=False)
    else:
        text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    atomic_write_text(path, text + "\n")


def replace_folder(finished: Path, dest: Path) -> None:
    """Put the folder ``finished`` where ``dest`` is. An existing ``dest`` is moved aside
    first and deleted after, so that ``dest`` is never half-written."""
    finished, dest = Path(finished), Path(dest)
    fsync_tree(finished)
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(dest, old)
    os.replace(finished, dest)
    _fsync(dest.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def merge_folder(staged: Path, dest: Path, last: str | None = None) -> None:
    """Move every entry of ``staged`` into the existing folder ``dest`` (replacing entries of
    the same name), ``last`` last: a reader that trusts ``dest/last`` finds everything else
    already in place (and on disk)."""
    fsync_tree(staged)
    for item in sorted(Path(staged).iterdir(), key=lambda p: p.name == last):
        target = Path(dest) / item.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        if item.name == last:
            _fsync(Path(dest))  # everything else is in place before the entry that says "done"
        os.replace(item, target)
    _fsync(Path(dest))


@contextmanager
def staged_folder(dest: str | os.PathLike, *, merge: bool = False, last: str | None = None) -> Iterator[Path]:
    """Yield an empty folder beside ``dest`` to fill; when the block ends without an error it
    becomes ``dest``.

    Args:
        dest: the folder to write. Its parent is created.
        merge: when ``dest`` exists, move the new entries into it (keeping what else it holds,
            e.g. a training run's logs) instead of replacing it.
        last: with ``merge``, the entry moved last (a manifest whose presence means "done").

    On an error the staging folder is deleted and ``dest`` is as it was.
    """
    dest = Path(dest)
    _writable_folder(dest.parent, dest)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    except OSError as exc:
        raise ConfigError(f"cannot write {dest}: {exc.strerror or exc}") from None
    try:
        yield staging
        if merge and dest.is_dir():
            merge_folder(staging, dest, last)
        elif dest.is_dir() and not any(dest.iterdir()):
            dest.rmdir()
            fsync_tree(staging)
            os.replace(staging, dest)
            _fsync(dest.parent)
        else:
            replace_folder(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
