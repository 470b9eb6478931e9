"""Feeding a :class:`~.monitor.Monitor` from a source: a file, a folder that is watched for new
files, standard input, or any iterable of document batches (the plug-in point for a message
queue such as Kafka: see :class:`Source` and docs/monitoring.md).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

from ...core.ui import say
from .documents import FORMATS, MAX_CHARS, Skipped, check_document, read_documents, write_skipped

__all__ = ["Source", "FileSource", "FolderSource", "RecordSource", "run_ingest", "source_for"]


class Source(Protocol):
    """Anything that yields ``(documents, skipped)`` batches (documents checked by
    :func:`~.documents.check_document`) and is told when a batch is stored, so that it can
    commit its position (a file is marked done; a Kafka consumer commits its offsets)."""

    def batches(self) -> Iterator[tuple[list[dict], list[Skipped]]]: ...

    def stored(self) -> None: ...


class FileSource:
    """One file (or ``-``, standard input)."""

    def __init__(self, path: str | Path, *, batch_size: int = 256, max_chars: int = MAX_CHARS):
        self.path, self.batch_size, self.max_chars = path, batch_size, max_chars

    def batches(self):
        yield from read_documents(self.path, batch_size=self.batch_size, max_chars=self.max_chars)

    def stored(self) -> None:
        pass


class FolderSource:
    """The CSV/JSONL files of a folder, oldest first; with ``watch``, new files as they appear
    (polled every ``interval`` seconds). A file is read once it has not changed for one
    interval, and remembered in the store (path, size, time) so that a restart skips it."""

    def __init__(self, folder: str | Path, store, *, batch_size: int = 256, max_chars: int = MAX_CHARS,
                 watch: bool = True, interval: float = 2.0, stop_after: float | None = None):
        self.folder, self.store = Path(folder), store
        self.batch_size, self.max_chars = batch_size, max_chars
        self.watch, self.interval, self.stop_after = watch, interval, stop_after
        self._current: tuple[str, int, float] | None = None
        self._rows = 0

    def _ready(self) -> list[Path]:
        files = sorted((p for p in self.folder.iterdir() if p.is_file() and p.suffix.lower() in FORMATS
                        and not p.name.startswith(".")), key=lambda p: (p.stat().st_mtime, p.name))
        ready = []
        for p in files:
            st = p.stat()
            if self.watch and time.time() - st.st_mtime < self.interval:
                continue  # still being written
            if not self.store.file_done(str(p.resolve()), st.st_size, st.st_mtime):
                ready.append(p)
        return ready

    def batches(self):
        started = time.monotonic()
        while True:
            for path in self._ready():
                st = path.stat()
                self._current, self._rows = (str(path.resolve()), st.st_size, st.st_mtime), 0
                say(f"Reading {path.name}...")
                for docs, skipped in read_documents(path, batch_size=self.batch_size, max_chars=self.max_chars):
                    self._rows += len(docs) + len(skipped)
                    yield docs, skipped
                self.store.mark_file(*self._current, self._rows)
                self._current = None
            if not self.watch or (self.stop_after is not None and time.monotonic() - started > self.stop_after):
                return
            time.sleep(self.interval)

    def stored(self) -> None:
        pass


class RecordSource:
    """Raw records (dicts with ``id``, ``time``, ``text``...) from any iterable, in batches."""

    def __init__(self, records: Iterable[dict], *, batch_size: int = 256, max_chars: int = MAX_CHARS,
                 name: str = "<records>"):
        self.records, self.batch_size, self.max_chars, self.name = records, batch_size, max_chars, name

    def batches(self):
        docs, skipped = [], []
        for i, raw in enumerate(self.records):
            doc, skip = check_document(raw, f"{self.name}:{i}", max_chars=self.max_chars)
            (docs.append(doc) if doc is not None else skipped.append(skip))
            if len(docs) >= self.batch_size:
                yield docs, skipped
                docs, skipped = [], []
        if docs or skipped:
            yield docs, skipped

    def stored(self) -> None:
        pass


def source_for(source: str | Path, store, *, batch_size: int = 256, max_chars: int = MAX_CHARS,
               watch: bool = True, interval: float = 2.0, stop_after: float | None = None) -> Source:
    """The source a ``--source`` value names: a folder (watched unless ``watch`` is false), a
    file, or ``-``."""
    if str(source) != "-" and Path(source).is_dir():
        return FolderSource(source, store, batch_size=batch_size, max_chars=max_chars, watch=watch,
                            interval=interval, stop_after=stop_after)
    return FileSource(source, batch_size=batch_size, max_chars=max_chars)


def run_ingest(monitor, source: Source, *, replay: bool = False, skipped_path: str | Path | None = None,
               progress_every: int = 10_000) -> dict:
    """Ingest every batch of ``source``; skipped rows go to ``skipped_path`` (CSV). Returns
    the totals: ``received``, ``stored``, ``repeated``, ``skipped``, ``alerts``, ``seconds``."""
    totals = {"received": 0, "stored": 0, "repeated": 0, "skipped": 0, "alerts": 0}
    started, shown = time.perf_counter(), 0
    for docs, skipped in source.batches():
        if skipped:
            totals["skipped"] += len(skipped)
            if skipped_path is not None:
                write_skipped(skipped_path, skipped)
        if docs:
            result = monitor.ingest(docs, replay=replay)
            source.stored()
            for key in ("received", "stored", "repeated"):
                totals[key] += result[key]
            totals["alerts"] += len(result["alerts"])
            for alert in result["alerts"]:
                say(f"alert: {alert['state']} {alert['rule']} · {alert['entity_name']} · {alert['metric']} "
                    f"{alert['value'] if alert['value'] is None else round(alert['value'], 3)} · window "
                    f"{alert['window_start']}")
        if totals["received"] - shown >= progress_every:
            shown = totals["received"]
            rate = shown / max(time.perf_counter() - started, 1e-9)
            say(f"  {shown:,} documents ({totals['stored']:,} new, {totals['skipped']:,} skipped), {rate:,.0f}/s")
    totals["seconds"] = round(time.perf_counter() - started, 2)
    return totals
