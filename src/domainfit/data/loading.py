"""Reading user data (CSV, TSV, JSONL, Parquet, DataFrame, list of dicts) into a Dataset.

:func:`read_rows` streams raw rows in bounded memory. :func:`load_dataset` parses them
for a task, validates them and applies the bad-row policy: ``"error"`` raises one
:class:`DataError` listing every problem; ``"skip"`` leaves bad rows out, records each in
``Dataset.skipped`` (write them with :func:`write_skipped`) and says so in
``Dataset.warnings``. Nothing is dropped silently.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domainfit.data import _readers
from domainfit.data._checks import check_columns, parse_row, skipped_rows
from domainfit.data._labels import label_format
from domainfit.data.tokens import parse_token_row
from domainfit.data.types import ColumnSpec, Dataset, Example, SkippedRow
from domainfit.data.validation import (
    format_lines, row_problems, single_class_problems, token_check, validate_examples,
)
from domainfit.core.errors import ConfigError, DataError, Problem
from domainfit.core.io import atomic_file

__all__ = ["read_rows", "load_dataset", "write_skipped", "SKIPPED_FILENAME", "BAD_ROWS_HINT"]

SKIPPED_FILENAME = "skipped_rows.csv"
BAD_ROWS_HINT = ("Fix these rows, or pass --on-bad-rows skip to leave them out "
                 f"(they are written to {SKIPPED_FILENAME}).")
_POLICIES = ("error", "skip")


@dataclass
class _Opened:
    name: str
    path: Path | None
    rows: Iterator[tuple[int, Any]]


def read_rows(source: Any, *, fmt: str | None = None) -> Iterator[tuple[int, dict]]:
    """Stream ``(line, row)`` pairs from a file or in-memory data, in bounded memory.

    ``line`` is the 1-based file line (CSV/TSV: the header is line 1, a record spanning
    several lines carries its first line; JSONL: lines count from 1; Parquet: rows count
    from 1), or the 0-based row index for a DataFrame or a list of dicts. JSON ``null``,
    pandas NaN/NA and cells missing from a short CSV row come out as ``None``; empty
    CSV cells stay ``""``.

    Args:
        source: a path (``str`` or ``os.PathLike``), a pandas DataFrame, or an iterable
            of dicts.
        fmt: ``"csv"``, ``"tsv"``, ``"jsonl"``, ``"parquet"`` or ``"conll"``; by default taken
            from the extension (.csv, .tsv, .jsonl/.ndjson/.json, .parquet, .conll/.bio/.iob).

    Returns:
        A generator of ``(line, row_dict)``.

    Raises:
        DataError: a missing file or unknown format (at once); an empty file, bytes that
            are not UTF-8, a malformed JSON line or a JSON line that is not an object
            (when reached, with its line number).

    Example:
        >>> for line, row in read_rows("train.csv"):  # doctest: +SKIP
        ...     print(line, row["text"])
        2 where is my card?
    """
    opened = _open(source, fmt)
    return _raise_bad(opened.rows)


def _raise_bad(rows: Iterator[tuple[int, Any]]) -> Iterator[tuple[int, dict]]:
    for line, row in rows:
        if isinstance(row, _readers.BadRecord):
            raise DataError([row.problem])
        yield line, row


def _open(source: Any, fmt: str | None) -> _Opened:
    """Check the source eagerly and return its name, path and a lazy row iterator."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        name = str(source)
        if not path.is_file():
            reason = "no such file" if not path.exists() else "not a file"
            raise _readers.fail(name, None, reason)
        kind = _readers.detect_format(path, fmt)
        if kind == "parquet":
            rows = _readers.iter_parquet(path, name)
        elif kind == "jsonl":
            rows = _readers.iter_jsonl(path, name)
        elif kind == "conll":
            rows = _readers.iter_conll(path, name)
        else:
            rows = _readers.iter_delimited(path, name, "\t" if kind == "tsv" else ",")
        return _Opened(name, path, _non_empty(rows, name))
    if _is_dataframe(source):
        return _Opened("<dataframe>", None, _non_empty(_readers.iter_dataframe(source, "<dataframe>"), "<dataframe>"))
    if isinstance(source, (bytes, bytearray, dict)) or not hasattr(source, "__iter__"):
        raise ConfigError(f"cannot read data from a {type(source).__name__}; pass a file path, "
                          "a pandas DataFrame or a list of dicts")
    return _Opened("<records>", None, _non_empty(_readers.iter_records(source, "<records>"), "<records>"))


def _is_dataframe(obj: Any) -> bool:
    pandas = sys.modules.get("pandas")  # no DataFrame can exist unless pandas is imported
    return pandas is not None and isinstance(obj, pandas.DataFrame)


def _non_empty(rows: Iterator[tuple[int, Any]], name: str) -> Iterator[tuple[int, Any]]:
    count = 0
    for item in rows:
        count += 1
        yield item
    if count == 0:
        raise _readers.fail(name, None, "the data is empty (no rows)")


def load_dataset(
    source: Any,
    *,
    task: str = "classification",
    columns: ColumnSpec = ColumnSpec(),
    require_labels: bool = True,
    on_bad_rows: str = "error",
    tokenizer: Any = None,
    max_length: int | None = None,
    fmt: str | None = None,
) -> Dataset:
    """Read, parse and validate a data set for ``task``.

    Labels: ``classification`` and ``pair`` give stripped strings (``1`` becomes ``"1"``);
    ``multilabel`` gives lists from ``"a|b"``, a JSON list string or a real list;
    ``regression`` gives finite floats; ``retrieval`` needs none (the pair column holds the
    positive text); ``token-classification`` reads tokens + BIO tags or text + spans (see
    :mod:`domainfit.data.tokens`).

    Args:
        source: a path, a pandas DataFrame or a list of dicts (see :func:`read_rows`).
        task: ``"classification"``, ``"multilabel"``, ``"regression"``, ``"pair"``,
            ``"retrieval"`` or ``"token-classification"``.
        columns: which columns hold the text, the label and an optional second text.
        require_labels: whether every row needs a label (False for prediction data; the
            label column may then be absent).
        on_bad_rows: ``"error"`` raises on any problem; ``"skip"`` leaves out rows with
            row-level problems (whole-file problems still raise).
        tokenizer: optional tokenizer, to warn about texts longer than ``max_length`` and
            about unknown tokens, and to measure ``Dataset.unk_share``.
        max_length: the model's maximum length in tokens.
        fmt: the file format, when the extension does not say it.

    Returns:
        A :class:`Dataset`; ``fingerprint`` is the sha256 of the file bytes (of the
        canonical JSON Lines dump of the rows for in-memory data).

    Raises:
        DataError: with every problem found (and a hint on how to skip bad rows).
        ConfigError: an unknown task or policy.

    Example:
        >>> data = load_dataset("train.csv", columns=ColumnSpec(text="utterance"))  # doctest: +SKIP
        >>> data.examples[0]
        Example(text='where is my card?', label='card_arrival', text_pair=None, line=2)
    """
    if on_bad_rows not in _POLICIES:
        raise ConfigError(f"on_bad_rows must be one of {', '.join(_POLICIES)}, not '{on_bad_rows}'")
    how = label_format(task)
    if how.parse is None:
        return _load_tokens(_open(source, fmt), columns, on_bad_rows, tokenizer)
    parse_label = how.parse
    require_labels = require_labels and how.needs_labels
    opened = _open(source, fmt)
    rows, in_memory_hash = _collect(opened)
    check_columns(rows, opened.name, columns, require_labels)
    examples, problems = _parse_all(rows, opened.name, columns, parse_label, require_labels)
    found, warnings = validate_examples(
        examples, file=opened.name, task=task, columns=columns, require_labels=require_labels)
    problems += found
    problems.sort(key=lambda p: (p.line is not None, p.line if p.line is not None else 0))
    kept, skipped = _apply_policy(examples, problems, rows, opened.name, on_bad_rows)
    if skipped and how.classes:
        left = single_class_problems(kept, opened.name, columns.label)
        if left:
            raise DataError(left, hint="Only one label is left once the rows with problems are left out.")
    tokens = token_check(kept, opened.name, tokenizer, max_length)
    warnings += tokens.warnings
    if skipped:
        warnings.append(_skipped_warning(opened.name, skipped))
    fingerprint = file_sha256(opened.path) if opened.path else in_memory_hash
    return Dataset(kept, opened.name, fingerprint, columns, skipped, warnings, tokens.unk_share)


def _load_tokens(opened: _Opened, columns: ColumnSpec, on_bad_rows: str, tokenizer: Any = None) -> Dataset:
    """Token-classification data: every row parsed into words and BIO tags."""
    rows, in_memory_hash = _collect(opened)
    readable = [row for _, row in rows if not isinstance(row, _readers.BadRecord)]
    if readable and not any(columns.text in row or "tokens" in row for row in readable):
        found = ", ".join(f"'{c}'" for c in dict.fromkeys(k for row in readable[:100] for k in row))
        raise DataError([Problem(opened.name, None, None, f"no row has a 'tokens' column (with 'tags') or a "
                                 f"'{columns.text}' column (with 'spans'); the columns are {found}")])
    examples, problems = [], []
    for line, row in rows:
        if isinstance(row, _readers.BadRecord):
            problems.append(row.problem)
            continue
        example, found = parse_token_row(row, line, opened.name, columns)
        problems += found
        if example is not None:
            examples.append(example)
    problems.sort(key=lambda p: (p.line is not None, p.line if p.line is not None else 0))
    kept, skipped = _apply_policy(examples, problems, rows, opened.name, on_bad_rows)
    tokens = token_check(kept, opened.name, tokenizer, None, truncation=False)  # long sentences are windowed
    warnings = tokens.warnings + ([_skipped_warning(opened.name, skipped)] if skipped else [])
    fingerprint = file_sha256(opened.path) if opened.path else in_memory_hash
    return Dataset(kept, opened.name, fingerprint, columns, skipped, warnings, tokens.unk_share)


def _collect(opened: _Opened) -> tuple[list[tuple[int, Any]], str]:
    """Read every row; hash in-memory rows on the way (files are hashed from their bytes)."""
    digest = hashlib.sha256()
    rows = []
    for line, row in opened.rows:
        if opened.path is None:
            digest.update(json.dumps(row, sort_keys=True, ensure_ascii=False, default=str).encode() + b"\n")
        rows.append((line, row))
    return rows, digest.hexdigest()


def _parse_all(
    rows: Sequence[tuple[int, Any]], file: str, columns: ColumnSpec,
    parse_label: Callable[[Any], Any], require_labels: bool,
) -> tuple[list[Example], list[Problem]]:
    """Parse rows; return the cleanly parsed examples and the problems of the others."""
    examples, problems = [], []
    for line, row in rows:
        if isinstance(row, _readers.BadRecord):
            problems.append(row.problem)
            continue
        example, found, label_missing = parse_row(row, line, file, columns, parse_label)
        if found:
            need_label = require_labels and label_missing
            problems += found + row_problems(example, file=file, columns=columns, require_labels=need_label)
        else:
            examples.append(example)
    return examples, problems


def _apply_policy(
    examples: list[Example], problems: list[Problem], rows: Sequence[tuple[int, Any]],
    file: str, on_bad_rows: str,
) -> tuple[list[Example], list[SkippedRow]]:
    if on_bad_rows == "error" or not problems:
        if problems:
            row_level = any(p.line is not None for p in problems)
            raise DataError(problems, hint=BAD_ROWS_HINT if row_level else None)
        return examples, []
    whole_file = [p for p in problems if p.line is None]
    if whole_file:
        raise DataError(whole_file)
    skipped = skipped_rows(problems, rows)
    bad = {s.line for s in skipped}
    kept = [e for e in examples if e.line not in bad]
    if not kept:
        raise DataError(problems, hint=f"No usable rows are left: all {len(rows)} rows have problems.")
    return kept, skipped


def _skipped_warning(name: str, skipped: list[SkippedRow]) -> str:
    return (f"{name}: {len(skipped)} row(s) with problems were left out ({format_lines([s.line for s in skipped])}); "
            f"they are listed with the reason in {SKIPPED_FILENAME}")


def file_sha256(path: Path) -> str:
    """sha256 hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_skipped(skipped: Sequence[SkippedRow], path: str | os.PathLike) -> Path:
    """Write skipped rows as CSV: ``line, column, reason``, then the row's own columns.

    A row column named like one of the first three is written as ``original_<name>``;
    lists and dicts are written as JSON.

    Args:
        skipped: rows from ``Dataset.skipped``.
        path: the CSV file to write (parent folders are created).

    Returns:
        The path written.

    Example:
        >>> write_skipped(data.skipped, run_dir / SKIPPED_FILENAME)  # doctest: +SKIP
    """
    fixed = ["line", "column", "reason"]
    names: dict[str, str] = {}
    for row in skipped:
        for key in row.values:
            names.setdefault(key, f"original_{key}" if key in fixed else key)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(out) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(fixed + list(names.values()))
        for row in skipped:
            cells = [_cell(row.values.get(key)) for key in names]
            writer.writerow([_cell(row.line), _cell(row.column), row.reason] + cells)
    return out


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict, tuple)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)
