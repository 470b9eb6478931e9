"""Reading interactions and items, with every problem reported by file and line, and the
leave-last-out split.

* interactions: ``user,item[,rating][,time]`` (CSV, TSV or JSONL; other column names through
  ``columns``). A row is a positive when it has no rating or its rating reaches the
  threshold; every row (any rating) counts as *seen*. A user-item pair given twice keeps its
  latest row (ties: the last in the file), and the build says how many were merged.
* items: ``item,text[,time][,title]``. ``time`` is when the item appeared (a year, a date or
  POSIX seconds): the text tower learns how much its age matters. An item with empty text is
  kept (collaborative parts still rank it) and counted in the build's report.
* times in mixed formats: POSIX seconds (milliseconds above 10^11), ISO 8601 dates and
  date-times (``Z`` or an offset; naive ones are UTC), ``YYYY/MM/DD``, or a bare year
  (1000–2999 → 1 January of that year, UTC).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ...core.errors import DataError, Problem

__all__ = ["Items", "Interactions", "read_items", "read_interactions", "parse_time", "leave_last_out",
           "INTERACTION_COLUMNS", "ITEM_COLUMNS"]

INTERACTION_COLUMNS = ("user", "item", "rating", "time")
ITEM_COLUMNS = ("item", "text", "time", "title")


def parse_time(value) -> float:
    """POSIX seconds from a time in any of the accepted formats; NaN for an empty value.

    Raises:
        ValueError: a value that is none of them.
    """
    if value is None:
        return math.nan
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        text = str(value).strip()
        if not text:
            return math.nan
        try:
            number = float(text)
        except ValueError:
            number = None
        if number is None:
            iso = text.replace("/", "-").replace("Z", "+00:00")
            try:
                moment = datetime.fromisoformat(iso)
            except ValueError:
                raise ValueError(f"'{text[:40]}' is not a time (POSIX seconds, ISO 8601 date or date-time, "
                                 "or a year)") from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
            return moment.timestamp()
    if not math.isfinite(number):
        raise ValueError(f"'{value}' is not a time")
    if number.is_integer() and 1000 <= number <= 2999:
        return datetime(int(number), 1, 1, tzinfo=timezone.utc).timestamp()
    if abs(number) > 1e11:  # milliseconds
        number /= 1000.0
    return number


def _rows(path: Path, columns: dict[str, str]):
    """``(line, {column: value})`` for each row of a CSV/TSV/JSONL file (line numbers as in
    :class:`Problem`), renamed to the canonical names through ``columns``."""
    rename = {theirs: ours for ours, theirs in columns.items()}
    suffix = path.suffix.lower()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError([Problem(str(path), None, None, f"cannot be read ({exc.strerror or exc})")]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise DataError([Problem(str(path), line, None, "is not UTF-8 text")]) from None
    if suffix in (".jsonl", ".ndjson", ".json"):
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                yield n, {"__error__": f"is not valid JSON ({exc.msg})"}
                continue
            if not isinstance(record, dict):
                yield n, {"__error__": "is not a JSON object"}
                continue
            yield n, {rename.get(k, k): v for k, v in record.items()}
        return
    if suffix not in (".csv", ".tsv", ".txt"):
        raise DataError([Problem(str(path), None, None, "is not a CSV, TSV or JSONL file")])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if suffix == ".tsv" else ",")
    header = next(reader, None)
    if not header:
        raise DataError([Problem(str(path), None, None, "is empty")])
    header = [rename.get(h.strip(), h.strip()) for h in header]
    start = 1
    for values in reader:
        line = start + 1
        start = reader.line_num
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            yield line, {"__error__": f"has {len(values)} fields; the header has {len(header)}"}
            continue
        yield line, dict(zip(header, values))


def _require(path: Path, first: dict, needed: tuple[str, ...], columns: dict[str, str]) -> None:
    missing = [c for c in needed if c not in first]
    if missing:
        named = ", ".join(f"'{columns.get(c, c)}'" for c in missing)
        raise DataError([Problem(str(path), None, None, f"lacks the column{'s' if len(missing) > 1 else ''} {named} "
                                 f"(found: {', '.join(k for k in first if k != '__error__')})")],
                        hint="Name the columns with columns: in the recipe (e.g. user: user_id).")


def _checked_rows(path: Path, columns: dict[str, str], needed: tuple[str, ...], problems: list[Problem]):
    """The rows that parsed, after checking the first one has the ``needed`` columns; rows
    that did not parse go to ``problems``. A file with no rows at all is a :class:`DataError`."""
    first = True
    for line, row in _rows(path, columns):
        if "__error__" in row:
            problems.append(Problem(str(path), line, None, row["__error__"]))
            continue
        if first:
            _require(path, row, needed, columns)
            first = False
        yield line, row
    if first and not problems:
        raise DataError([Problem(str(path), None, None, "has no rows")])


def _row_time(row: dict, path: Path, line: int, columns: dict[str, str], problems: list[Problem]) -> float | None:
    """The row's time (NaN when it has none), or ``None`` with the problem recorded."""
    try:
        return parse_time(row.get("time"))
    except ValueError as exc:
        problems.append(Problem(str(path), line, columns.get("time", "time"), str(exc)))
        return None


def _text(value) -> str:
    return "" if value is None else str(value).strip()


@dataclass
class Items:
    """The catalogue: ids, texts, optional appearance times (POSIX seconds, NaN when unknown)
    and titles (the first part of the text when no title column)."""

    ids: list[str]
    texts: list[str]
    times: np.ndarray
    titles: list[str]
    empty_text: int = 0
    index: dict[str, int] = field(default_factory=dict)

    def __post_init__(self):
        if not self.index:
            self.index = {item: i for i, item in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)


def title_of(text: str, limit: int = 80) -> str:
    """A short title: the text up to its first sentence end, at most ``limit`` characters."""
    head = text.split(". ", 1)[0].strip()
    return head if len(head) <= limit else head[:limit - 1].rstrip() + "…"


def read_items(path: str | Path, columns: dict[str, str] | None = None, *,
               existing: dict[str, int] | None = None) -> Items:
    """The items file, checked: every problem (missing id, id given twice, bad time) with its line.

    ``existing``: ids already in a catalogue, which the file must not repeat (adding items).

    Raises:
        DataError: listing every problem found.
    """
    path, columns = Path(path), dict(columns or {})
    problems: list[Problem] = []
    ids, texts, times, titles, lines = [], [], [], [], {}
    empty = 0
    for line, row in _checked_rows(path, columns, ("item", "text"), problems):
        item = _text(row.get("item"))
        if not item:
            problems.append(Problem(str(path), line, columns.get("item", "item"), "has no item id"))
            continue
        if item in lines:
            problems.append(Problem(str(path), line, columns.get("item", "item"),
                                    f"item '{item[:60]}' is also on line {lines[item]}"))
            continue
        if existing is not None and item in existing:
            problems.append(Problem(str(path), line, columns.get("item", "item"),
                                    f"item '{item[:60]}' is already in the catalogue"))
            continue
        moment = _row_time(row, path, line, columns, problems)
        if moment is None:
            continue
        lines[item] = line
        text = _text(row.get("text"))
        empty += not text
        ids.append(item)
        texts.append(text)
        times.append(moment)
        titles.append(_text(row.get("title")) or title_of(text) or item)
    if problems:
        raise DataError(problems)
    return Items(ids, texts, np.array(times, dtype=np.float64), titles, empty_text=empty)


@dataclass
class Interactions:
    """Interactions as parallel arrays (row order: by user, then time, then file order).

    Attributes:
        users: user ids (index → id). user, item: indices (``item`` into the items).
        rating: the rating (NaN where none). time: POSIX seconds (NaN where none).
        positive: the rows that count as liked. merged: duplicate pairs merged on reading.
    """

    users: list[str]
    user: np.ndarray
    item: np.ndarray
    rating: np.ndarray
    time: np.ndarray
    positive: np.ndarray
    merged: int = 0

    def __len__(self) -> int:
        return len(self.user)

    @property
    def user_index(self) -> dict[str, int]:
        return {u: i for i, u in enumerate(self.users)}

    def subset(self, rows: np.ndarray) -> "Interactions":
        return Interactions(self.users, self.user[rows], self.item[rows], self.rating[rows], self.time[rows],
                            self.positive[rows])


def read_interactions(path: str | Path, items: Items, columns: dict[str, str] | None = None, *,
                      threshold: float | None = None, on_unknown_items: str = "error") -> Interactions:
    """The interactions file, checked against the catalogue.

    ``threshold``: ratings at or above it are positives (``None``: every row is a positive).
    ``on_unknown_items``: ``error`` (the default: every row naming an item the items file lacks,
    with its line) or ``skip`` (left out; counted in the build's report).

    Raises:
        DataError: listing every problem found.
    """
    path, columns = Path(path), dict(columns or {})
    problems: list[Problem] = []
    users: dict[str, int] = {}
    u_list, i_list, r_list, t_list, order = [], [], [], [], []
    unknown = 0
    for line, row in _checked_rows(path, columns, ("user", "item"), problems):
        user, item = _text(row.get("user")), _text(row.get("item"))
        if not user or not item:
            problems.append(Problem(str(path), line, columns.get("user" if not user else "item"),
                                    f"has no {'user' if not user else 'item'} id"))
            continue
        idx = items.index.get(item)
        if idx is None:
            unknown += 1
            if on_unknown_items == "error":
                problems.append(Problem(str(path), line, columns.get("item", "item"),
                                        f"item '{item[:60]}' is not in the items file"))
            continue
        rating = math.nan
        raw = row.get("rating")
        if raw is not None and _text(raw) != "":
            try:
                rating = float(raw)
            except (TypeError, ValueError):
                problems.append(Problem(str(path), line, columns.get("rating", "rating"),
                                        f"rating '{_text(raw)[:30]}' is not a number"))
                continue
            if not math.isfinite(rating):
                problems.append(Problem(str(path), line, columns.get("rating", "rating"), "rating is not finite"))
                continue
        moment = _row_time(row, path, line, columns, problems)
        if moment is None:
            continue
        u_list.append(users.setdefault(user, len(users)))
        i_list.append(idx)
        r_list.append(rating)
        t_list.append(moment)
        order.append(line)
    if problems:
        raise DataError(problems, hint="Pass on_unknown_items: skip (recipe) or --skip-unknown-items to leave out "
                                       "rows naming items the items file lacks." if unknown else None)
    if not u_list:
        raise DataError([Problem(str(path), None, None, "has no interactions with known items")])
    user = np.array(u_list, dtype=np.int64)
    item = np.array(i_list, dtype=np.int64)
    rating = np.array(r_list, dtype=np.float64)
    moment = np.array(t_list, dtype=np.float64)
    line = np.array(order, dtype=np.int64)
    # user, then time (unknown times keep file order, after the known ones), then file order.
    sort_time = np.where(np.isnan(moment), np.inf, moment)
    rows = np.lexsort((line, sort_time, user))
    user, item, rating, moment = user[rows], item[rows], rating[rows], moment[rows]
    # A pair given twice keeps its latest row.
    pair = user * (len(items) + 1) + item
    _, last_from_end = np.unique(pair[::-1], return_index=True)
    keep = np.sort(len(pair) - 1 - last_from_end)
    merged = len(pair) - len(keep)
    user, item, rating, moment = user[keep], item[keep], rating[keep], moment[keep]
    # A row without a rating (implicit feedback) is a positive; with one, it must reach the threshold.
    positive = np.ones(len(user), dtype=bool) if threshold is None else np.isnan(rating) | (rating >= threshold)
    result = Interactions(list(users), user, item, rating, moment, positive, merged=merged)
    result.unknown_items = unknown  # type: ignore[attr-defined]
    return result


def leave_last_out(data: Interactions, *, last: int = 1, min_positives: int = 2) -> tuple[Interactions, Interactions]:
    """``(train, test)``: each user's ``last`` positives (by time, then file order) are held
    out when the user keeps at least ``min_positives - 1`` positives in train; every other
    row stays in train."""
    starts = np.flatnonzero(np.r_[True, data.user[1:] != data.user[:-1]])
    ends = np.r_[starts[1:], len(data.user)]
    held = []
    for s, e in zip(starts, ends):
        pos = np.flatnonzero(data.positive[s:e])
        take = min(last, len(pos) - (min_positives - 1))
        if take > 0:
            held.extend(s + pos[-take:])
    held_mask = np.zeros(len(data.user), dtype=bool)
    held_mask[held] = True
    return data.subset(np.flatnonzero(~held_mask)), data.subset(np.flatnonzero(held_mask))
