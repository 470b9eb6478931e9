"""Windowed aggregates per entity (or topic, source, or the whole stream).

For each key and window (``15m``, ``1h``, ``1d``, or any ``<n>m|h|d``):

| column | meaning |
|---|---|
| ``volume`` | documents (reprints included) |
| ``unique_volume`` | stories: documents that are not a reprint of an earlier one |
| ``reprints`` | ``volume - unique_volume`` |
| ``negative_volume`` | stories labelled negative |
| ``mean_sentiment`` | mean of P(positive) − P(negative) over the stories (NaN: no story) |
| ``negative_share`` | share of the stories labelled negative (NaN: no story) |
| ``buzz`` | ``(unique_volume + 1) / (baseline + 1)``, baseline = the key's mean unique volume over its previous ``baseline`` windows (add-one, so a first mention is not infinite) |

Sentiment is averaged over stories, not documents, so that a story reprinted thirty times
moves the mood of its entity once.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ...core.errors import ConfigError
from .detectors import trailing_sums

__all__ = ["parse_window", "parse_duration", "aggregate", "WindowCounts", "trailing_mean", "METRICS", "WINDOWS"]

WINDOWS = ("15m", "1h", "1d")
METRICS = ("volume", "unique_volume", "reprints", "negative_volume", "mean_sentiment", "negative_share", "buzz")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(value: str | int | float, what: str = "a duration") -> int:
    """Seconds in ``"15m"``, ``"1h"``, ``"2d"``, ``"90s"`` (or a number of seconds)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise ConfigError(f"{what} must not be negative, not {value}.")
        return int(value)
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", str(value))
    if not match:
        raise ConfigError(f"{what} {value!r} is not a duration like 15m, 1h or 1d.")
    return int(match.group(1)) * _UNITS[match.group(2)]


def parse_window(value: str | int) -> int:
    """A window's length in seconds; it must divide a day (so windows line up with days)."""
    seconds = parse_duration(value, "window")
    if seconds < 60 or 86400 % seconds and seconds % 86400:
        raise ConfigError(f"window {value!r}: use a length of at least a minute that divides a day "
                          "(15m, 1h, 1d, ...) or whole days.")
    return seconds


_COUNTS = ["key", "bucket", "volume", "unique_volume", "sentiment_sum", "negative"]


class WindowCounts:
    """The raw counts per key and window behind :func:`aggregate`, kept between calls: each
    call reads from the store only the windows it has not read yet (and the last ``refresh``
    windows again, for documents that arrived late), and forgets windows older than the
    oldest one asked for. The alert engine keeps one per window length, so judging a newly
    closed hour reads one hour of documents, not the week of history its detectors compare
    with."""

    def __init__(self, store, window: str | int, by: str = "entity", *, refresh: int = 2):
        self.store, self.w, self.by, self.refresh = store, parse_window(window), by, refresh
        self._counts = pd.DataFrame(columns=_COUNTS)
        self._lo = self._hi = None  # the buckets [lo, hi) held

    def counts(self, first: int, end: int) -> pd.DataFrame:
        """The counts of the windows from ``first`` to ``end`` (both window starts)."""
        w = self.w
        if self._lo is None or first < self._lo or end < self._hi - self.refresh * w:
            fetch_from = first  # nothing usable held: read it all
            kept = self._counts.iloc[:0]
        else:
            fetch_from = max(first, self._hi - self.refresh * w)
            kept = self._counts[(self._counts["bucket"] >= first) & (self._counts["bucket"] < fetch_from)]
        fresh = pd.DataFrame(self.store.window_counts(w, since=fetch_from, until=end, by=self.by), columns=_COUNTS)
        fresh["bucket"] = fresh["bucket"].astype(np.int64)
        self._counts = pd.concat([kept, fresh], ignore_index=True) if len(kept) else fresh
        self._lo, self._hi = first, end
        return self._counts

    def frame(self, *, since: int, until: int, keys: list[str] | None = None, baseline: int = 168) -> pd.DataFrame:
        """As :func:`aggregate`."""
        w = self.w
        start, end = since - since % w, until - until % w
        if end <= start:
            return pd.DataFrame(columns=["key", "window_start", *METRICS])
        first = start - baseline * w
        return _metrics(self.counts(first, end), keys, first, start, end, w, baseline)


def trailing_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Per position ``t`` of the last axis: the mean of the up to ``window`` values before
    ``t`` (0 where there are none)."""
    n = np.minimum(np.arange(x.shape[-1]), window)
    return np.where(n > 0, trailing_sums(x, window) / np.maximum(n, 1), 0.0)


def _metrics(counts: pd.DataFrame, keys, first: int, start: int, end: int, w: int, baseline: int) -> pd.DataFrame:
    names = sorted(set(counts["key"])) if keys is None else list(keys)
    buckets = np.arange(first, end, w, dtype=np.int64)
    shape = (len(names), len(buckets))
    grids = {c: np.zeros(shape) for c in ("volume", "unique_volume", "sentiment_sum", "negative")}
    if len(counts):
        where = {k: i for i, k in enumerate(names)}
        row = counts["key"].map(where)
        col = (counts["bucket"].to_numpy(np.int64) - first) // w
        keep = row.notna().to_numpy() & (col >= 0) & (col < len(buckets))
        r, c = row.to_numpy()[keep].astype(np.int64), col[keep]
        for name, grid in grids.items():
            grid[r, c] = counts[name].to_numpy(np.float64)[keep]
    stories = grids["unique_volume"]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_sentiment = np.where(stories > 0, grids["sentiment_sum"] / stories, np.nan)
        negative_share = np.where(stories > 0, grids["negative"] / stories, np.nan)
    buzz = (stories + 1.0) / (trailing_mean(stories, baseline) + 1.0)
    lo = int(np.searchsorted(buckets, start))
    n = shape[1] - lo
    cut = lambda m: m[:, lo:].reshape(-1)  # noqa: E731
    frame = pd.DataFrame({
        "key": np.repeat(np.array(names, dtype=object), n), "window_start": np.tile(buckets[lo:], len(names)),
        "volume": cut(grids["volume"]).astype(np.int64), "unique_volume": cut(stories).astype(np.int64),
        "reprints": cut(grids["volume"] - stories).astype(np.int64),
        "negative_volume": cut(grids["negative"]).astype(np.int64), "mean_sentiment": cut(mean_sentiment),
        "negative_share": cut(negative_share), "buzz": cut(buzz)})
    frame.attrs["keys"] = names  # key by key, each with the same windows: callers can reshape
    return frame


def aggregate(store, window: str | int = "1h", *, since: int, until: int, by: str = "entity",
              keys: list[str] | None = None, baseline: int = 168) -> pd.DataFrame:
    """The aggregates of every key (or of ``keys``) for each window from ``since`` to
    ``until`` (POSIX seconds, rounded down to windows), windows without documents included
    (volume 0). Columns: ``key``, ``window_start`` (POSIX seconds), then :data:`METRICS`;
    rows sorted by key, then time.

    Args:
        store: a :class:`~.store.MonitorStore`.
        by: ``entity`` (documents whose subject it is), ``topic``, ``source`` or ``all``.
        baseline: windows before each one that ``buzz`` compares with (read from the store
            before ``since`` as needed).
    """
    return WindowCounts(store, window, by).frame(since=since, until=until, keys=keys, baseline=baseline)
