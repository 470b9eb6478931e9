"""Streaming row readers, one per input format.

Every reader yields ``(line, row)`` pairs, where ``row`` is either a ``dict`` of column
values or a :class:`BadRecord` for a record that could not be read at all (bad bytes,
malformed JSON). Yielding bad records instead of raising lets :func:`load_dataset` report
every bad row at once, or skip them; the public :func:`read_rows` raises on the first one.
Problems with the whole file (missing, empty, unreadable header) raise at once.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domainfit.core.errors import DataError, Problem

FORMATS = ("csv", "tsv", "jsonl", "parquet", "conll")
_EXTENSIONS = {
    ".conll": "conll", ".bio": "conll", ".iob": "conll", ".iob2": "conll",
    ".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
    ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet",
}
# Parquet batches of this many rows keep memory bounded on files of any size.
_PARQUET_BATCH_ROWS = 8192


@dataclass
class BadRecord:
    """A record that could not be read; ``values`` holds what could be recovered."""

    problem: Problem
    values: dict[str, Any]


def fail(file: str, line: int | None, reason: str, column: str | None = None) -> DataError:
    """Build a one-problem :class:`DataError`."""
    return DataError([Problem(file, line, column, reason)])


def detect_format(path: Path, fmt: str | None) -> str:
    """Return the format name from ``fmt`` or else from the file extension."""
    if fmt is not None:
        name = fmt.lower().lstrip(".")
        name = {"ndjson": "jsonl", "json": "jsonl", "pq": "parquet"}.get(name, name)
        if name not in FORMATS:
            raise fail(str(path), None, f"unknown format '{fmt}'; use one of {', '.join(FORMATS)}")
        return name
    found = _EXTENSIONS.get(path.suffix.lower())
    if found is None:
        raise fail(str(path), None, f"cannot tell the format from the extension '{path.suffix}'; "
                   f"use .csv, .tsv, .jsonl, .parquet or .conll, or pass fmt= (one of {', '.join(FORMATS)})")
    return found


def _decoded_lines(f, bad_lines: dict[int, str]) -> Iterator[str]:
    """Decode a binary file line by line, noting lines that are not valid UTF-8.

    UTF-8 never uses the newline byte inside a multi-byte character, so decoding each
    line on its own is exact and tells us the line number of any bad bytes. Bad lines
    are decoded with replacement characters so that reading can go on.
    """
    for number, raw in enumerate(f, start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]  # byte-order mark written by Excel
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as err:
            bad = raw[err.start:err.start + 1].hex()
            bad_lines[number] = (f"the line is not valid UTF-8 (byte 0x{bad} at position "
                                 f"{err.start + 1}); save the file as UTF-8")
            yield raw.decode("utf-8", errors="replace")


def _pop_bad(bad_lines: dict[int, str], first: int, last: int) -> tuple[int, str] | None:
    """Remove and return the first bad line in ``first..last`` (and forget older ones)."""
    found = None
    for number in sorted(n for n in bad_lines if n <= last):
        reason = bad_lines.pop(number)
        if found is None and number >= first:
            found = (number, reason)
    return found


def iter_delimited(path: Path, file: str, delimiter: str) -> Iterator[tuple[int, Any]]:
    """Stream a CSV/TSV file; the header is line 1 and each record carries its start line."""
    bad_lines: dict[int, str] = {}
    with path.open("rb") as f:
        reader = csv.reader(_decoded_lines(f, bad_lines), delimiter=delimiter)
        header = _read_header(reader, file)
        bad = _pop_bad(bad_lines, 1, reader.line_num)
        if bad:
            raise fail(file, bad[0], bad[1])
        while True:
            start = reader.line_num + 1
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                raise fail(file, start, f"the file cannot be parsed here ({err})") from None
            if not fields:
                continue  # blank line
            values = _fields_to_row(header, fields)
            bad = _pop_bad(bad_lines, start, reader.line_num)
            if bad:
                yield start, BadRecord(Problem(file, bad[0], None, bad[1]), values)
            elif len(fields) > len(header):
                reason = (f"the row has {len(fields)} fields but the header has {len(header)}; "
                          "put texts that contain the delimiter in double quotes")
                yield start, BadRecord(Problem(file, start, None, reason), values)
            else:
                yield start, values


def _read_header(reader, file: str) -> list[str]:
    for fields in reader:
        if fields:
            header = [name.strip() for name in fields]
            seen: set[str] = set()
            for name in header:
                if name in seen:
                    raise fail(file, reader.line_num, f"the column name '{name}' appears twice in the header")
                seen.add(name)
            return header
    raise fail(file, None, "the file is empty (no header, no rows)")


def _fields_to_row(header: list[str], fields: list[str]) -> dict[str, Any]:
    row: dict[str, Any] = {name: None for name in header}  # short rows: missing values are None
    for i, value in enumerate(fields):
        row[header[i] if i < len(header) else f"field_{i + 1}"] = value
    return row


def iter_jsonl(path: Path, file: str) -> Iterator[tuple[int, Any]]:
    """Stream a JSON Lines file; lines count from 1 and blank lines are ignored."""
    bad_lines: dict[int, str] = {}
    with path.open("rb") as f:
        for number, text in enumerate(_decoded_lines(f, bad_lines), start=1):
            reason = bad_lines.pop(number, None)
            if reason is not None:
                yield number, BadRecord(Problem(file, number, None, reason), {"raw": text.rstrip("\r\n")})
            elif text.strip():
                yield number, _parse_json_line(text, number, file)


def iter_conll(path: Path, file: str) -> Iterator[tuple[int, Any]]:
    """Stream a CoNLL file as one row per sentence: ``{"tokens", "tags", "_lines"}``.

    Each line holds a token and its tag (the first and the last whitespace-separated
    column, so four-column CoNLL-2003 files work too); a blank line ends a sentence;
    ``-DOCSTART-`` lines are ignored. A sentence carries the line of its first token, and
    ``_lines`` the line of every token (for messages about one tag).
    """
    bad_lines: dict[int, str] = {}
    tokens: list[str] = []
    tags: list[str] = []
    lines: list[int] = []
    problem: Problem | None = None

    def sentence():
        row = {"tokens": tokens, "tags": tags, "_lines": lines}
        return lines[0], (BadRecord(problem, row) if problem else row)

    with path.open("rb") as f:
        for number, text in enumerate(_decoded_lines(f, bad_lines), start=1):
            fields = text.split()
            if not fields or fields[0] == "-DOCSTART-":
                if lines:
                    yield sentence()
                tokens, tags, lines, problem = [], [], [], None
                continue
            reason = bad_lines.pop(number, None)
            if reason is None and len(fields) < 2:
                reason = "expected a token and its tag separated by whitespace, found one column"
            if reason is not None and problem is None:
                problem = Problem(file, number, None, reason)
            tokens.append(fields[0])
            tags.append(fields[-1])
            lines.append(number)
    if lines:
        yield sentence()


def _parse_json_line(text: str, number: int, file: str) -> Any:
    raw = {"raw": text.rstrip("\r\n")}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        if number == 1 and text.strip() in ("[", "{"):
            raise _not_json_lines(file) from None
        reason = f"the line is not valid JSON ({err.msg} at column {err.colno})"
        return BadRecord(Problem(file, number, None, reason), raw)
    if number == 1 and isinstance(value, list):
        raise _not_json_lines(file)
    if not isinstance(value, dict):
        reason = f"the line is a JSON {type(value).__name__}, not an object like {{\"text\": ..., \"label\": ...}}"
        return BadRecord(Problem(file, number, None, reason), raw)
    return value


def _not_json_lines(file: str) -> DataError:
    return fail(file, 1, "the file is one JSON document, not JSON Lines; write one object per "
                "line (pandas: df.to_json(path, orient='records', lines=True))")


def iter_parquet(path: Path, file: str) -> Iterator[tuple[int, Any]]:
    """Stream a Parquet file batch by batch; rows are numbered from 1."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as err:
        raise fail(file, None, f"the file is not a readable Parquet file ({err})") from None
    number = 0
    for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH_ROWS):
        for row in batch.to_pylist():
            number += 1
            yield number, row


def iter_records(records: Iterable[Any], file: str) -> Iterator[tuple[int, Any]]:
    """Stream an in-memory sequence of mappings; rows are numbered from 0."""
    for index, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise fail(file, index, f"row {index} is a {type(record).__name__}, not a dict")
        yield index, {str(k): _missing_to_none(v) for k, v in record.items()}


def iter_dataframe(frame, file: str) -> Iterator[tuple[int, Any]]:
    """Stream a pandas DataFrame row by row; rows are numbered from 0 in positional order."""
    columns = [str(c) for c in frame.columns]
    if len(set(columns)) != len(columns):
        raise fail(file, None, "the DataFrame has duplicate column names")
    for index, values in enumerate(frame.itertuples(index=False, name=None)):
        yield index, {c: _missing_to_none(v) for c, v in zip(columns, values, strict=True)}


def _missing_to_none(value: Any) -> Any:
    """pandas marks missing values with NaN/NA/NaT, domainfit with None; numpy scalars
    (from nullable or numpy-typed columns) become plain Python values."""
    if value is None or isinstance(value, (str, bool, int, list, dict, tuple)):
        return value
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a dependency
        return value
    try:
        return None if pd.isna(value) is True else value
    except (TypeError, ValueError):
        return value
