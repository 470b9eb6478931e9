"""Turning raw cell values into texts and task labels.

Each parser takes one raw value (never ``None``; missing values are handled by the
caller) and returns the parsed label, or raises ``ValueError`` with a reason in the
user's terms.
"""

from __future__ import annotations

from dataclasses import dataclass

import json
import math
from collections.abc import Callable
from typing import Any

from domainfit.core.errors import ConfigError


def is_missing(value: Any) -> bool:
    """True for ``None`` and for strings that are empty or whitespace only."""
    return value is None or (isinstance(value, str) and not value.strip())


def to_text(value: Any) -> str:
    """Return a cell as text; numbers become their string form, ``None`` becomes ``""``.

    Raises:
        ValueError: for lists, dicts and other values that are not text.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"the text is a {type(value).__name__}, not a string")


def _scalar_to_label(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"the label {value} is not a class name")
        # pandas turns an int column with gaps into floats; 1.0 should still mean class "1".
        return str(int(value)) if value.is_integer() else str(value)
    if isinstance(value, (str, int)):
        return str(value).strip()
    raise ValueError(f"the label is a {type(value).__name__}, not a class name")


def parse_classification(value: Any) -> str:
    """A class name as a stripped string (``1`` and ``"1"`` both become ``"1"``)."""
    if isinstance(value, (list, tuple, dict)):
        raise ValueError(f"the label is a {type(value).__name__}; use the multilabel task for label lists")
    return _scalar_to_label(value)


def parse_multilabel(value: Any) -> list[str]:
    """A label set from ``"a|b"``, a JSON list string ``'["a", "b"]'`` or a list.

    Parts are stripped, empty parts dropped and repeats removed, keeping first-seen order.
    """
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                raise ValueError(f"the label {text!r} looks like a JSON list but is not valid JSON") from None
            if not isinstance(value, list):  # pragma: no cover - "[" always parses to a list
                raise ValueError("the label is not a list")
        else:
            value = text.split("|")
    elif not isinstance(value, (list, tuple)):
        # numpy arrays come from pandas list columns; a lone scalar is a one-label set
        value = value.tolist() if hasattr(value, "tolist") else [value]
    labels = [_scalar_to_label(v) for v in value if v is not None]
    labels = list(dict.fromkeys(label for label in labels if label))
    if not labels:
        raise ValueError("the label set is empty; give at least one label (e.g. \"billing|refund\")")
    return labels


def parse_regression(value: Any) -> float:
    """A finite float; strings like ``" 3.5 "`` are parsed."""
    if isinstance(value, bool):
        raise ValueError(f"the label {value} is not a number")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ValueError(f"the label {value!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"the label {value!r} is not a finite number")
    return number


@dataclass(frozen=True)
class LabelFormat:
    """How a task's labels are written in a data file (the one place the data layer knows it).

    Attributes:
        parse: the label parser, or None when rows are words and BIO tags (read by
            :mod:`domainfit.data.tokens`).
        needs_labels: False when rows need no label (retrieval: the pair column is the target).
        classes: labels are classes of one text, so a file with a single class cannot train.
    """

    parse: Callable[[Any], Any] | None
    needs_labels: bool = True
    classes: bool = False


LABEL_FORMATS: dict[str, LabelFormat] = {
    "classification": LabelFormat(parse_classification, classes=True),
    "multilabel": LabelFormat(parse_multilabel, classes=True),
    "regression": LabelFormat(parse_regression),
    "pair": LabelFormat(parse_classification),  # class names or numbers; the pair task tells which (tasks/pair.py)
    "retrieval": LabelFormat(parse_classification, needs_labels=False),
    "token-classification": LabelFormat(None),
}


def label_format(task: str) -> LabelFormat:
    """How ``task``'s labels are written.

    Raises:
        ConfigError: for a task this data loader does not know.
    """
    try:
        return LABEL_FORMATS[task]
    except KeyError:
        known = ", ".join(LABEL_FORMATS)
        raise ConfigError(f"unknown task '{task}' for loading labelled data; use one of: {known}") from None


def label_parser(task: str) -> Callable[[Any], Any] | None:
    """The label parser of ``task`` (see :func:`label_format`)."""
    return label_format(task).parse


def class_key(label: Any) -> str | None:
    """The class a label stratifies on: the label itself, the first of a list, else None."""
    if isinstance(label, str):
        return label
    if isinstance(label, list) and label and isinstance(label[0], str):
        return label[0]
    return None
