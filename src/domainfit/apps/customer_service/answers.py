"""Answer templates per intent, with slots, rendered safely.

An answers file maps an intent to an answer template. CSV/TSV/JSONL with the columns
``intent`` and ``answer`` and an optional ``slots`` column of defaults
(``card_type=card;delivery_days=3 to 5 working days``); or YAML/JSON: a mapping
``intent: answer`` or ``intent: {answer: ..., slots: {name: default}}``.

A slot is ``{name}`` (lower-case letters, digits, ``_``); ``{{`` and ``}}`` are literal
braces. Templates are checked when the file is read: any other use of braces
(``{0}``, ``{a.b}``, ``{x!r}``, ``{x:>10}``) is an error naming the line. Rendering
replaces only those slots, with values from the request's context, the session, or the
defaults; a value is inserted as plain text (control characters, braces and angle brackets
removed, at most 200 characters) and never rendered again, so neither a customer's message
nor a context value can inject a template or markup.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...core.errors import DataError, Problem

__all__ = ["Answer", "read_answers", "render", "clean_value", "slot_names", "SLOT"]

SLOT = re.compile(r"\{\{|\}\}|\{([a-z_][a-z0-9_]*)\}")
_BRACE = re.compile(r"[{}]")
MAX_VALUE = 200


@dataclass
class Answer:
    template: str
    slots: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"answer": self.template, "slots": dict(self.slots)}


def slot_names(template: str) -> list[str]:
    return [m.group(1) for m in SLOT.finditer(template) if m.group(1)]


def check_template(template: str) -> str | None:
    """None when the template is valid, else what is wrong with it."""
    rest = SLOT.sub("", template)
    bad = _BRACE.search(rest)
    if bad is not None:
        snippet = template[max(0, bad.start() - 10): bad.start() + 20]
        return (f"a brace that is not a slot near {snippet!r}: slots are {{name}} (lower-case letters, digits, _), "
                "literal braces are {{ and }}")
    return None


def clean_value(value: Any) -> str:
    """A slot value as safe plain text."""
    text = unicodedata.normalize("NFC", str(value))
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C" or ch == " ")
    text = re.sub(r"[{}<>]", "", text).strip()
    return text[:MAX_VALUE]


def render(answer: Answer, values: dict[str, Any] | None = None) -> tuple[str, list[str]]:
    """The answer text and the names of slots that had no value (filled with a neutral
    phrase made from the slot's name, e.g. ``your card type``)."""
    values = values or {}
    missing: list[str] = []

    def fill(m: re.Match) -> str:
        if m.group(0) == "{{":
            return "{"
        if m.group(0) == "}}":
            return "}"
        name = m.group(1)
        for source in (values, answer.slots):
            if source.get(name) not in (None, ""):
                value = clean_value(source[name])
                if value:
                    return value
        missing.append(name)
        return "your " + name.replace("_", " ")

    return SLOT.sub(fill, answer.template), missing


def _parse_slots(raw: Any, file: str, line: int | None, problems: list[Problem]) -> dict[str, str]:
    if raw is None or raw == "":
        return {}
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    out = {}
    for part in str(raw).split(";"):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        if not sep or not re.fullmatch(r"[a-z_][a-z0-9_]*", name.strip()):
            problems.append(Problem(file, line, "slots", f"{part.strip()!r} is not name=value"))
            continue
        out[name.strip()] = value.strip()
    return out


def read_answers(path: str | Path) -> dict[str, Answer]:
    """Read an answers file (see the module doc); every problem is reported with its line."""
    from ...data import read_rows

    path = Path(path)
    file = str(path)
    problems: list[Problem] = []
    entries: list[tuple[int | None, Any, Any, Any]] = []
    if path.suffix.lower() in (".yaml", ".yml", ".json"):
        import yaml

        if not path.is_file():
            raise DataError([Problem(file, None, None, "the answers file does not exist")])
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        if not isinstance(data, dict):
            raise DataError([Problem(file, None, None, "expected a mapping intent → answer")])
        for intent, value in data.items():
            if isinstance(value, dict):
                entries.append((None, intent, value.get("answer"), value.get("slots")))
            else:
                entries.append((None, intent, value, None))
    else:
        for line, row in read_rows(path):
            if "intent" not in row or "answer" not in row:
                raise DataError([Problem(file, None, None, "the answers file needs the columns 'intent' and "
                                         f"'answer' (found {', '.join(map(repr, row))})")])
            entries.append((line, row.get("intent"), row.get("answer"), row.get("slots")))
    answers: dict[str, Answer] = {}
    first: dict[str, int | None] = {}
    for line, intent, template, slots in entries:
        intent = "" if intent is None else str(intent).strip()
        where = f" (intent {intent!r})" if line is None and intent else ""
        if not intent:
            problems.append(Problem(file, line, "intent", "the intent is empty" + where))
            continue
        if intent in answers:
            problems.append(Problem(file, line, "intent", f"the intent {intent!r} has a second answer (first on "
                                    f"line {first[intent]})" if first[intent] else f"{intent!r} is given twice"))
            continue
        if template is None or not str(template).strip():
            problems.append(Problem(file, line, "answer", "the answer is empty" + where))
            continue
        template = str(template).strip()
        error = check_template(template)
        if error:
            problems.append(Problem(file, line, "answer", error + where))
            continue
        answers[intent] = Answer(template, _parse_slots(slots, file, line, problems))
        first[intent] = line
    if problems:
        raise DataError(problems)
    if not answers:
        raise DataError([Problem(file, None, None, "the answers file holds no answers")])
    return answers
