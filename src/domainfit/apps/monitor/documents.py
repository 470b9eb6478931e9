"""Reading the document stream: CSV or JSONL files, a folder of them, or standard input, in
batches, each document checked.

A document has ``id``, ``time`` and ``text`` (and optionally ``source`` and ``url``). ``time``
is ISO 8601 (``2026-03-01T10:15:00Z``, an offset, or no zone = UTC) or POSIX seconds. A row
that cannot be a document is **skipped, never dropped silently**: it is returned with its
place (``file:line``) and the reason, and the command line writes it to
``skipped_rows.csv``. Skipped are: no id, an id over 200 characters, a missing or bad time,
an empty text, a text over ``max_chars`` (default 20,000), and a line that is not UTF-8.
Files are read line by line, so memory stays flat however long the stream.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ...core.errors import ConfigError

__all__ = ["Skipped", "parse_time", "check_document", "read_documents", "FORMATS", "MAX_CHARS", "write_skipped"]

FORMATS = (".csv", ".jsonl", ".ndjson")
MAX_CHARS = 20_000
MAX_ID = 200
_FIELDS = ("id", "time", "text", "source", "url")


@dataclass(frozen=True)
class Skipped:
    """A row that was not ingested: where it was, its id if it had one, and why."""

    where: str
    id: str | None
    reason: str
    text: str = ""

    def to_dict(self) -> dict:
        return {"where": self.where, "id": self.id, "reason": self.reason, "text": self.text[:200]}


def parse_time(value) -> int | None:
    """POSIX seconds of an ISO 8601 time (no zone = UTC) or of a number of seconds; None when
    it is neither (or out of range)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return int(value) if math.isfinite(value) and 0 <= value < 32503680000 else None
    text = str(value).strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        return parse_time(number)
    try:
        moment = _dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.timezone.utc)
    return parse_time(moment.timestamp())


def check_document(raw: dict, where: str, *, max_chars: int = MAX_CHARS) -> tuple[dict | None, Skipped | None]:
    """``(document, None)`` with ``id``, ``epoch``, ``text``, ``source``, ``url``, or
    ``(None, Skipped)`` saying why the row cannot be one."""
    doc_id = raw.get("id")
    doc_id = None if doc_id is None else str(doc_id).strip()
    text = raw.get("text")
    text = "" if text is None else str(text)
    if not doc_id:
        return None, Skipped(where, None, "no id", text)
    if len(doc_id) > MAX_ID:
        return None, Skipped(where, doc_id[:MAX_ID], f"the id has {len(doc_id)} characters; the limit is {MAX_ID}",
                             text)
    epoch = parse_time(raw.get("time"))
    if epoch is None:
        shown = str(raw.get("time"))[:40] if raw.get("time") not in (None, "") else "missing"
        return None, Skipped(where, doc_id, f"bad time ({shown}); use ISO 8601 like 2026-03-01T10:15:00Z or "
                                            "POSIX seconds", text)
    if not text.strip():
        return None, Skipped(where, doc_id, "empty text")
    if len(text) > max_chars:
        return None, Skipped(where, doc_id, f"the text has {len(text):,} characters; the limit is {max_chars:,} "
                                            "(--max-chars)", text)
    source, url = raw.get("source"), raw.get("url")
    return {"id": doc_id, "epoch": epoch, "text": text,
            "source": str(source)[:200] if source not in (None, "") else None,
            "url": str(url)[:2000] if url not in (None, "") else None}, None


def _lines(stream: io.BufferedIOBase, name: str) -> Iterator[tuple[int, str | None]]:
    """``(line number, text)`` of a byte stream; ``None`` for a line that is not UTF-8."""
    for number, raw in enumerate(stream, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            yield number, None
            continue
        if number == 1:
            line = line.lstrip("\ufeff")
        yield number, line


def _jsonl(stream, name: str) -> Iterator[tuple[str, dict | None, str | None]]:
    for number, line in _lines(stream, name):
        where = f"{name}:{number}"
        if line is None:
            yield where, None, "the line is not UTF-8"
        elif line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                yield where, None, f"not JSON ({exc.msg})"
                continue
            yield (where, row, None) if isinstance(row, dict) else (where, None, "not a JSON object")


def _csv(stream, name: str) -> Iterator[tuple[str, dict | None, str | None]]:
    header: list[str] | None = None
    pending: list[str] = []  # a quoted field may span lines: gather them until a row is complete
    start = 0
    for number, line in _lines(stream, name):
        if line is None:
            yield f"{name}:{number}", None, "the line is not UTF-8"
            pending = []
            continue
        if not pending:
            start = number
        pending.append(line)
        text = "".join(pending)
        if text.count('"') % 2:  # an open quote: the row goes on
            continue
        pending = []
        row = next(csv.reader([text]), [])
        if header is None:
            header = [h.strip() for h in row]
            missing = [f for f in ("id", "time", "text") if f not in header]
            if missing:
                raise ConfigError(f"{name}: the header has no {', '.join(missing)} column "
                                  f"(it has {', '.join(header[:10]) or 'nothing'}); a document file needs id,time,text.")
            continue
        if not any(cell.strip() for cell in row):
            continue
        yield f"{name}:{start}", dict(zip(header, row)), None
    if pending:
        yield f"{name}:{start}", None, "an unclosed quote runs to the end of the file"


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(f"{path}: documents come as CSV or JSONL (.csv, .jsonl), not {suffix or 'no extension'}.")
    return "csv" if suffix == ".csv" else "jsonl"


def _rows(source: str | Path) -> Iterator[tuple[str, dict | None, str | None]]:
    if str(source) == "-":
        stream = sys.stdin.buffer
        first = stream.peek(1)[:1] if hasattr(stream, "peek") else b""
        reader = _jsonl if first in (b"{", b"") else _csv
        yield from reader(stream, "<stdin>")
        return
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"{path} does not exist (give a CSV or JSONL file, a folder, or - for standard input).")
    reader = _csv if _kind(path) == "csv" else _jsonl
    with path.open("rb") as stream:
        yield from reader(stream, path.name)


def read_documents(source: str | Path, *, batch_size: int = 256, max_chars: int = MAX_CHARS
                   ) -> Iterator[tuple[list[dict], list[Skipped]]]:
    """Batches of checked documents from a file (or ``-``): ``(documents, skipped)``."""
    batch: list[dict] = []
    skipped: list[Skipped] = []
    for where, raw, problem in _rows(source):
        if raw is None:
            skipped.append(Skipped(where, None, problem or "unreadable"))
        else:
            doc, skip = check_document(raw, where, max_chars=max_chars)
            if doc is not None:
                batch.append(doc)
            else:
                skipped.append(skip)
        if len(batch) >= batch_size:
            yield batch, skipped
            batch, skipped = [], []
    if batch or skipped:
        yield batch, skipped


def write_skipped(path: str | Path, rows: list[Skipped]) -> None:
    """Append skipped rows to a CSV (``where,id,reason,text``), with a header when it is new."""
    path = Path(path)
    new = not path.exists()
    with path.open("a", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["where", "id", "reason", "text"])
        if new:
            writer.writeheader()
        for row in rows:
            writer.writerow(row.to_dict())
