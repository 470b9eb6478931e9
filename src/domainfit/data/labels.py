"""Label sets without training data: reading a label file, and readable label names.

Zero-shot classification and the few-shot label-name examples both need a label's name
in words: ``card_arrival`` becomes ``card arrival``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import DataError, Problem

__all__ = ["LabelSpec", "humanize", "read_label_file", "parse_label_specs"]


@dataclass(frozen=True)
class LabelSpec:
    """One label: its name (what the model predicts), an optional description, and where
    it was read (for messages)."""

    name: str
    description: str | None = None
    line: int | None = None


def humanize(name: str) -> str:
    """A label name in words: ``card_arrival`` → ``card arrival``, ``TopUpFailed`` →
    ``top up failed``, ``reverted_card_payment?`` → ``reverted card payment``.

    Example:
        >>> humanize("Refund_not_showing_up")
        'refund not showing up'
    """
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)  # camelCase → camel Case
    words = re.sub(r"[_\-./:]+", " ", words)
    words = re.sub(r"\s+", " ", words).strip(" ?!")
    return words.lower() if words else name


def read_label_file(path: str | Path) -> list[LabelSpec]:
    """Read labels from a CSV (``label`` column, optional ``description``), or a YAML/JSON
    list of names or of ``{label, description}`` mappings.

    Raises:
        DataError: a missing or unreadable file, a missing ``label`` column, an empty name or
            a duplicate name, each with its line (CSV) or position (YAML/JSON list, from 1).
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise DataError([Problem(source, None, None, "label file not found")])
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml", ".json"):
        import yaml

        try:
            text = path.read_text(encoding="utf-8")
            raw = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError, UnicodeDecodeError) as exc:
            raise DataError([Problem(source, None, None, f"not valid {suffix[1:].upper()}: {exc}")]) from None
        if isinstance(raw, dict) and "labels" in raw:
            raw = raw["labels"]
        if not isinstance(raw, list):
            raise DataError([Problem(source, None, None, "expected a list of labels (names, or mappings with "
                                                         "'label' and 'description')")])
        return parse_label_specs(raw, source, first_line=1)
    from .loading import read_rows

    rows = list(read_rows(path))
    if rows and "label" not in rows[0][1]:
        raise DataError([Problem(source, 1, "label", f"no 'label' column (found: {', '.join(rows[0][1])})")])
    return parse_label_specs([dict(row, _line=line) for line, row in rows], source)


def parse_label_specs(items: list[Any], source: str = "<labels>", first_line: int = 0) -> list[LabelSpec]:
    """Check and convert label entries (names or mappings); every problem is reported at once."""
    specs: list[LabelSpec] = []
    problems: list[Problem] = []
    seen: dict[str, int | None] = {}
    for index, item in enumerate(items):
        line = index + first_line
        if isinstance(item, dict):
            line = item.get("_line", line)
            name, description = item.get("label"), item.get("description")
        else:
            name, description = item, None
        name = "" if name is None else str(name).strip()
        description = str(description).strip() if description not in (None, "") else None
        if not name:
            problems.append(Problem(source, line, "label", "empty label name"))
            continue
        if name in seen:
            problems.append(Problem(source, line, "label", f"duplicate label {name!r} (first on line {seen[name]})"))
            continue
        seen[name] = line
        specs.append(LabelSpec(name, description, line))
    if not specs and not problems:
        problems.append(Problem(source, None, None, "no labels"))
    elif len(specs) < 2 and not problems:
        problems.append(Problem(source, None, None, "at least 2 labels are needed to classify"))
    if problems:
        raise DataError(problems)
    return specs
