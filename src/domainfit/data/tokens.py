"""Token-classification data: BIO tags over words, from three input shapes.

* JSON Lines (or any row source) with a list of tokens and a list of tags per row:
  ``{"tokens": ["Anna", "lives", "in", "Oslo"], "tags": ["B-PER", "O", "O", "B-LOC"]}``;
* CoNLL files (``.conll``, ``.bio``, ``.iob``): one ``token tag`` per line (the first and the
  last whitespace-separated column), a blank line between sentences, ``-DOCSTART-`` lines
  ignored;
* raw text with character-offset spans:
  ``{"text": "Anna lives in Oslo", "spans": [{"start": 0, "end": 4, "label": "PER"}]}``;
  the text is cut into words (each CJK character is a word of its own) with a cut at every
  span edge, so every span is exactly a run of words.

Every example keeps its words, their character offsets in ``Example.text`` and one tag per
word (``Example.label``). Tags must be valid BIO (IOB2): an ``I-X`` must follow ``B-X`` or
``I-X``; a sequence that breaks this is reported with its line and position, never repaired
silently. (Predicted sequences are repaired: see :func:`repair_bio`.)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from domainfit.data.types import ColumnSpec, Example
from domainfit.core.errors import Problem

__all__ = ["split_words", "remove_spans", "check_bio", "repair_bio", "entities_from_tags", "parse_token_row",
           "word_split_mode", "join_tokens"]

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
# A CJK character alone; a run of other word characters; any other visible character alone.
_WORD = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+|[^\w\s]", re.UNICODE)
_CHAR = re.compile(r"\S")
_CJK_CHAR = re.compile(rf"[{_CJK}]")


def split_words(text: str, mode: str = "words", cuts: Sequence[int] = ()) -> list[tuple[int, int]]:
    """Character offsets ``(start, end)`` of the words of ``text``.

    Args:
        text: raw text.
        mode: ``"words"`` (word-character runs, CJK characters and punctuation marks each
            alone) or ``"chars"`` (every visible character alone: how character-level data
            such as Chinese NER corpora is tokenized).
        cuts: extra character positions where a word must end (span edges).

    Example:
        >>> [("Anna lives"[s:e]) for s, e in split_words("Anna lives")]
        ['Anna', 'lives']
    """
    pattern = _CHAR if mode == "chars" else _WORD
    cut_set = sorted(set(cuts))
    words = []
    for match in pattern.finditer(text):
        start, end = match.span()
        inner = [c for c in cut_set if start < c < end]
        for cut in inner:
            words.append((start, cut))
            start = cut
        words.append((start, end))
    return words


def remove_spans(text: str, spans: Sequence[tuple[int, int]]) -> str:
    """``text`` with the character spans (words from :func:`split_words`) taken out: the
    whitespace around a removed word collapses to one space where it had space on both sides,
    and to nothing where it touched a neighbour (a comma after it, Chinese), unless two words
    would run together.

    Example:
        >>> remove_spans("profit rose, sharply", [(7, 11)])
        'profit, sharply'
        >>> remove_spans("我要取消", [(1, 2)])
        '我取消'
    """
    if not spans:
        return text
    for start, end in sorted(spans, reverse=True):
        left, right = text[:start], text[end:]
        spaced = left[-1:].isspace() and right[:1].isspace()
        left, right = left.rstrip(), right.lstrip()
        joined = left[-1:].isalnum() and right[:1].isalnum() and not _CJK_CHAR.search(left[-1:] + right[:1])
        text = left + (" " if left and right and (spaced or joined) else "") + right
    return text.strip()


def word_split_mode(examples: Sequence[Example]) -> str:
    """``"chars"`` when the training words are (almost) all single characters, else ``"words"``;
    raw texts given for prediction are then cut the same way the training data was."""
    lengths = [len(t) for e in examples for t in (e.tokens or [])]
    if lengths and sum(1 for n in lengths if n == 1) / len(lengths) >= 0.9:
        return "chars"
    return "words"


def _split_tag(tag: str) -> tuple[str, str]:
    if tag == "O":
        return "O", ""
    if len(tag) > 2 and tag[1] == "-" and tag[0] in "BI":
        return tag[0], tag[2:]
    raise ValueError(tag)


def check_bio(tags: Sequence[str]) -> list[str]:
    """Reasons why ``tags`` are not valid BIO (empty when they are).

    Example:
        >>> check_bio(["O", "I-PER"])
        ["tag 2 'I-PER' follows 'O': an entity must start with 'B-PER'"]
    """
    reasons = []
    previous = "O"
    for i, tag in enumerate(tags, start=1):
        if not isinstance(tag, str):
            reasons.append(f"tag {i} is a {type(tag).__name__}, not a string like 'B-PER' or 'O'")
            previous = "O"
            continue
        try:
            prefix, kind = _split_tag(tag)
        except ValueError:
            reasons.append(f"tag {i} '{tag}' is not BIO: use 'O', 'B-TYPE' or 'I-TYPE'")
            previous = "O"
            continue
        if prefix == "I" and previous not in (f"B-{kind}", f"I-{kind}"):
            reasons.append(f"tag {i} '{tag}' follows '{previous}': an entity must start with 'B-{kind}'")
        previous = tag
    return reasons


def repair_bio(tags: Sequence[str]) -> list[str]:
    """Make a predicted tag sequence valid BIO: an ``I-X`` that does not continue an ``X``
    entity starts one (becomes ``B-X``), as conlleval reads it."""
    fixed = []
    previous = "O"
    for tag in tags:
        prefix, kind = _split_tag(tag)
        if prefix == "I" and previous[2:] != kind:
            tag = f"B-{kind}"
        fixed.append(tag)
        previous = tag
    return fixed


def entities_from_tags(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """Entities ``(type, first_word, last_word + 1)`` of a valid BIO sequence."""
    entities = []
    start, kind = None, ""
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, this = _split_tag(tag)
        if start is not None and (prefix != "I" or this != kind):
            entities.append((kind, start, i))
            start = None
        if prefix == "B":
            start, kind = i, this
    return entities


def _is_list_of(value: Any, kind: type) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(v, kind) for v in value)


def parse_token_row(row: dict, line: int, file: str, columns: ColumnSpec) -> tuple[Example | None, list[Problem]]:
    """Parse one row (tokens + tags, or text + spans) into an :class:`Example`.

    The token list is read from ``columns.text`` when it holds a list, else from a
    ``tokens`` column; the tags from ``columns.label``, else ``tags``; spans from ``spans``
    (or ``columns.label`` when it holds a list of objects).
    """
    tokens = row.get(columns.text) if isinstance(row.get(columns.text), (list, tuple)) else row.get("tokens")
    if tokens is not None:
        tag_column = columns.label if columns.label in row else "tags"
        return _from_tokens(tokens, row.get(tag_column), row.get("_lines"), line, file, columns.text, tag_column)
    span_column = columns.label if _is_list_of(row.get(columns.label), dict) else "spans"
    return _from_spans(row.get(columns.text), row.get(span_column), line, file, columns.text, span_column)


def _from_tokens(tokens, tags, lines, line, file, token_column, tag_column):
    problems = []

    def bad(reason: str, column: str | None = tag_column):
        problems.append(Problem(file, line, column, reason))

    if not _is_list_of(tokens, str):
        bad("the tokens are not a list of strings", token_column)
        return None, problems
    if not tokens:
        bad("the token list is empty", token_column)
    empty = [i for i, t in enumerate(tokens, start=1) if not t.strip()]
    if empty:
        bad(f"token(s) {', '.join(map(str, empty[:10]))} are empty or only spaces", token_column)
    if tags is None:
        bad("the tags are missing")
        return None, problems
    if not isinstance(tags, (list, tuple)):
        bad(f"the tags are a {type(tags).__name__}, not a list of BIO tags")
        return None, problems
    if len(tags) != len(tokens):
        bad(f"{len(tokens)} tokens but {len(tags)} tags; give one tag per token")
    else:
        for reason in check_bio(tags):
            position = int(reason.split()[1]) - 1
            bad(f"{reason} (file line {lines[position]})" if lines else reason)
    if problems:
        return None, problems
    text, offsets = join_tokens(tokens)
    return Example(text=text, label=list(tags), line=line, tokens=list(tokens), offsets=offsets), []


def join_tokens(tokens: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """Tokens joined by single spaces (for display), with each token's offsets."""
    offsets, position = [], 0
    for token in tokens:
        offsets.append((position, position + len(token)))
        position += len(token) + 1
    return " ".join(tokens), offsets


def _from_spans(text, spans, line, file, text_column, span_column):
    problems = []
    if not isinstance(text, str) or not text.strip():
        problems.append(Problem(file, line, text_column, "the text is missing or empty (or give tokens and tags)"))
        return None, problems
    if spans is None:
        spans = []
    if not _is_list_of(spans, dict):
        problems.append(Problem(file, line, span_column, "the spans are not a list of objects like "
                                '{"start": 0, "end": 4, "label": "PER"}'))
        return None, problems
    clean = []
    for n, span in enumerate(spans, start=1):
        start, end, label = span.get("start"), span.get("end"), span.get("label")
        if not (isinstance(start, int) and isinstance(end, int)) or isinstance(start, bool) or isinstance(end, bool):
            problems.append(Problem(file, line, span_column, f"span {n}: start and end must be whole numbers"))
            continue
        if not isinstance(label, str) or not label.strip() or label == "O":
            problems.append(Problem(file, line, span_column, f"span {n}: the label is missing or empty"))
            continue
        if not 0 <= start < end <= len(text):
            problems.append(Problem(file, line, span_column, f"span {n} ({start}, {end}) lies outside the text "
                                    f"of {len(text)} characters (0 <= start < end <= length)"))
            continue
        if not text[start:end].strip():
            problems.append(Problem(file, line, span_column, f"span {n} ({start}, {end}) covers only spaces"))
            continue
        clean.append((start, end, label.strip(), n))
    clean.sort()
    for (s1, e1, _, n1), (s2, _, _, n2) in zip(clean, clean[1:]):
        if s2 < e1:
            problems.append(Problem(file, line, span_column, f"spans {n1} and {n2} overlap; BIO tags allow one "
                                    "entity per character"))
    if problems:
        return None, problems
    words = split_words(text, "words", [c for s, e, _, _ in clean for c in (s, e)])
    tags = ["O"] * len(words)
    for start, end, label, _ in clean:
        inside = [i for i, (ws, we) in enumerate(words) if ws >= start and we <= end]
        for k, i in enumerate(inside):
            tags[i] = f"{'B' if k == 0 else 'I'}-{label}"
    tokens = [text[s:e] for s, e in words]
    return Example(text=text, label=tags, line=line, tokens=tokens, offsets=words), []
