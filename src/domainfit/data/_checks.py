"""Helpers for :func:`load_dataset`: column checks, row parsing, skipped-row records."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Any

from domainfit.data._labels import is_missing, to_text
from domainfit.data._readers import BadRecord
from domainfit.data.types import ColumnSpec, Example, SkippedRow
from domainfit.core.errors import DataError, Problem

_FLAGS = {"text": "--text-column", "label": "--label-column", "text_pair": "--text-pair-column"}


def check_columns(rows: Sequence[tuple[int, Any]], file: str, columns: ColumnSpec, require_labels: bool) -> None:
    """Raise a :class:`DataError` naming each configured column that no row has.

    Rows that could not be read at all are ignored here; they are reported row by row.
    """
    available: dict[str, None] = {}
    for _, row in rows:
        if not isinstance(row, BadRecord) and not row.keys() <= available.keys():
            available.update(dict.fromkeys(row))
    if not available:
        return
    wanted = {"text": columns.text, "text_pair": columns.text_pair}
    if require_labels:
        wanted["label"] = columns.label
    problems = [_missing_column(file, role, name, list(available))
                for role, name in wanted.items() if name is not None and name not in available]
    if problems:
        raise DataError(problems)


def _missing_column(file: str, role: str, name: str, available: list[str]) -> Problem:
    listed = ", ".join(f"'{c}'" for c in available)
    reason = f"there is no {role.replace('_', ' ')} column named '{name}'; the columns are {listed}"
    close = difflib.get_close_matches(name, available, n=1)
    if close:
        reason += f" (did you mean '{close[0]}'?)"
    reason += f"; choose one with {_FLAGS[role]}"
    return Problem(file, None, name, reason)


def parse_row(
    row: dict[str, Any], line: int, file: str, columns: ColumnSpec, parse_label: Callable[[Any], Any],
) -> tuple[Example, list[Problem], bool]:
    """Parse one row into an :class:`Example`.

    Returns:
        The example (its label ``None`` when missing or invalid), the problems found
        while parsing (a text that is not text, a label that cannot be parsed), and
        whether the label cell was missing.
    """
    problems = []
    text = _text(row.get(columns.text), line, file, columns.text, problems)
    pair = None
    if columns.text_pair is not None:
        pair = _text(row.get(columns.text_pair), line, file, columns.text_pair, problems)
    raw = row.get(columns.label)
    label = None
    if not is_missing(raw):
        try:
            label = parse_label(raw)
        except ValueError as err:
            problems.append(Problem(file, line, columns.label, str(err)))
    return Example(text=text, label=label, text_pair=pair, line=line), problems, is_missing(raw)


def _text(value: Any, line: int, file: str, column: str, problems: list[Problem]) -> str:
    try:
        return to_text(value)
    except ValueError as err:
        problems.append(Problem(file, line, column, str(err)))
        return str(value)


def skipped_rows(problems: Sequence[Problem], rows: Sequence[tuple[int, Any]]) -> list[SkippedRow]:
    """One :class:`SkippedRow` per row with row-level problems, with all its reasons."""
    by_line: dict[Any, list[Problem]] = {}
    for problem in problems:
        if problem.line is not None:
            by_line.setdefault(problem.line, []).append(problem)
    skipped = []
    for line, row in rows:
        found = by_line.pop(line, None)
        if found is None and isinstance(row, BadRecord):
            # bad bytes are reported on their own line, which may lie inside a multi-line record
            found = by_line.pop(row.problem.line, None)
        if found is None:
            continue
        values = row.values if isinstance(row, BadRecord) else row
        named = list(dict.fromkeys(p.column for p in found if p.column is not None))
        column = ", ".join(named) if named else None
        reason = "; ".join(p.reason for p in found)
        skipped.append(SkippedRow(line=found[0].line, column=column, reason=reason, values=dict(values)))
    return skipped
