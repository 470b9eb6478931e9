"""Data files in the console: what an upload must be, and the validation report of a file
with a column mapping (the same loader and checks as ``domainfit train``)."""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import DataError, DomainfitError
from ..data import ColumnSpec, load_dataset, read_rows
from .workspace import ConsoleError

__all__ = ["DataReport", "check_readable", "inspect", "TASK_CHOICES"]

PREVIEW_ROWS = 20
TASK_CHOICES = ("classification", "multilabel", "regression", "token-classification", "pair")


@dataclass
class DataReport:
    """What the data page shows about one file under one column mapping.

    Attributes:
        columns: the file's columns (from its first rows). preview: the first rows.
        rows: rows read. kept: rows that would train. skipped: rows with problems, each
            ``{"line", "column", "reason", "values"}`` (training leaves them out only when asked).
        problems: whole-file problems (a missing column, not UTF-8...) that stop training.
        warnings: the loader's warnings (long texts, unknown tokens...).
        labels: label → count over the kept rows, most common first.
        examples: the kept rows, parsed (for ``auto``'s suggestion; not in :meth:`as_dict`).
    """

    path: str
    task: str
    text_column: str
    label_column: str
    text_pair_column: str | None
    columns: list[str] = field(default_factory=list)
    preview: list[dict] = field(default_factory=list)
    rows: int = 0
    kept: int = 0
    skipped: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    labels: list[tuple[str, int]] = field(default_factory=list)
    examples: list = field(default_factory=list, repr=False)

    @property
    def trainable(self) -> bool:
        return not self.problems and self.kept > 0

    def as_dict(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != "examples"}
        out["labels"] = [{"label": k, "count": v} for k, v in self.labels]
        out["trainable"] = self.trainable
        return out


def check_readable(path: Path, shown: str) -> int:
    """Read a whole uploaded file once; returns its row count.

    Raises:
        ConsoleError: 422 with the loader's message, the file named ``shown`` (not UTF-8
            with the line, not CSV/JSON, empty).
    """
    try:
        return sum(1 for _ in read_rows(str(path)))
    except DomainfitError as exc:
        message = _plain(exc) if isinstance(exc, DataError) else str(exc)
        raise ConsoleError(message.replace(str(path), shown), 422, "unreadable_file") from None


def _plain(exc: DataError) -> str:
    return "; ".join(str(p) for p in exc.problems) or str(exc)


def guess_columns(columns: list[str], rows: list[dict]) -> tuple[str, str]:
    """A text and a label column to start the mapping from: ``text``/``label`` when present,
    else the column with the longest texts and the one with the fewest distinct values."""
    if not columns:
        return "text", "label"
    text = "text" if "text" in columns else max(columns, key=lambda c: sum(len(str(r.get(c) or "")) for r in rows))
    others = [c for c in columns if c != text] or columns
    label = "label" if "label" in columns else min(others, key=lambda c: len({str(r.get(c)) for r in rows}))
    return text, label


def inspect(path: Path, shown: str, *, task: str = "classification", text_column: str | None = None,
            label_column: str | None = None, text_pair_column: str | None = None) -> DataReport:
    """The validation report of ``path`` (named ``shown`` on the page) for ``task`` and the
    column mapping (guessed where not given)."""
    if task not in TASK_CHOICES:
        raise ConsoleError(f"task must be one of {', '.join(TASK_CHOICES)}, not {task!r}", 422, "bad_task")
    try:
        head = [row for _, row in itertools.islice(read_rows(str(path)), 200)]
    except DomainfitError as exc:
        return _named(DataReport(shown, task, text_column or "text", label_column or "label", text_pair_column,
                                 problems=[_plain(exc) if isinstance(exc, DataError) else str(exc)]), str(path))
    columns = list(dict.fromkeys(k for row in head for k in row))
    guessed_text, guessed_label = guess_columns(columns, head)
    report = DataReport(shown, task, text_column or guessed_text, label_column or guessed_label,
                        text_pair_column or None, columns=columns,
                        preview=[{c: _cell(row.get(c)) for c in columns} for row in head[:PREVIEW_ROWS]])
    spec = ColumnSpec(text=report.text_column, label=report.label_column, text_pair=report.text_pair_column)
    try:
        data = load_dataset(str(path), task=task, columns=spec, on_bad_rows="skip")
    except DataError as exc:
        report.problems = [str(p) for p in exc.problems] or [str(exc)]
        return _named(report, str(path))
    except DomainfitError as exc:
        report.problems = [str(exc)]
        return _named(report, str(path))
    report.examples = data.examples
    report.kept = len(data.examples)
    report.skipped = [{"line": s.line, "column": s.column, "reason": s.reason,
                       "values": {k: _cell(v) for k, v in s.values.items()}} for s in data.skipped]
    report.rows = report.kept + len(report.skipped)
    report.warnings = list(data.warnings)
    report.labels = _label_counts(task, data.examples)
    return _named(report, str(path))


def _named(report: DataReport, full: str) -> DataReport:
    """The report with the file named as the page names it (not by its absolute path)."""
    report.problems = [p.replace(full, report.path) for p in report.problems]
    report.warnings = [w.replace(full, report.path).replace("skipped_rows.csv", "the list below")
                       for w in report.warnings]
    return report


def _label_counts(task: str, examples: list) -> list[tuple[str, int]]:
    counts: Counter = Counter()
    for example in examples:
        label = example.label
        if task == "regression":
            continue
        if isinstance(label, list):  # multilabel labels; BIO tags → entity types
            counts.update(tag.split("-", 1)[-1] for tag in label if tag != "O")
        elif label is not None:
            counts[str(label)] += 1
    return counts.most_common()


def _cell(value) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= 300 else text[:300] + "…"
