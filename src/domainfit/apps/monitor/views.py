"""What people read from the store: the aggregates table, the entity overview with sparklines,
one entity's time series with its alerts, and its documents. Shared by the command line and
the dashboard's API, so both show the same numbers."""

from __future__ import annotations

import math

import pandas as pd

from ...core.errors import ConfigError
from .aggregates import aggregate, parse_window
from .store import MonitorStore, utc

__all__ = ["aggregates_table", "overview", "entity_series", "time_range"]


def _since(value: str | None) -> int | None:
    from ...stores.predictions import parse_since

    if value is None:
        return None
    try:
        moment = parse_since(value)
    except Exception as exc:  # parse_since raises a DomainfitError naming the value
        raise ConfigError(str(exc)) from None
    return int(moment.timestamp())


def time_range(store: MonitorStore, window: int, since: int | None = None, until: int | None = None,
               span: int | None = None) -> tuple[int, int] | None:
    """``(since, until)``: the given ones, else the last ``span`` seconds before the newest
    document (or everything stored); None when the store is empty."""
    newest = store.newest_epoch()
    if newest is None:
        return None
    end = until if until is not None else newest - newest % window + window
    if since is None:
        since = end - span if span is not None else store.oldest_epoch()
    return since, end


def _clean(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value


def aggregates_table(db: str | MonitorStore, *, window: str = "1h", by: str = "entity", key: str | None = None,
                     since: str | None = None, until: str | None = None, baseline: int = 168) -> pd.DataFrame:
    """The aggregates as a table with a readable ``window_start`` (ISO 8601, UTC)."""
    store = db if isinstance(db, MonitorStore) else MonitorStore(db)
    try:
        w = parse_window(window)
        bounds = time_range(store, w, _since(since), _since(until))
        if bounds is None:
            return pd.DataFrame(columns=["key", "window_start"])
        frame = aggregate(store, w, since=bounds[0], until=bounds[1], by=by, keys=[key] if key else None,
                          baseline=baseline)
    finally:
        if not isinstance(db, MonitorStore):
            store.close()
    frame["window_start"] = [utc(int(t)).isoformat() for t in frame["window_start"]]
    return frame


def overview(store: MonitorStore, names: dict[str, str], *, window: str = "1h", span: int = 7 * 86400) -> dict:
    """Every entity with documents in the last ``span``: its name, totals, latest mean
    sentiment and negative share, open alerts, and sparkline series (unique volume and mean
    sentiment per window)."""
    w = parse_window(window)
    bounds = time_range(store, w, span=span)
    if bounds is None:
        return {"window": window, "since": None, "until": None, "entities": []}
    frame = aggregate(store, w, since=bounds[0], until=bounds[1], baseline=min(168, max(2, span // w)))
    alerts = store.alerts(since=bounds[0], limit=10_000)
    firing: dict[str, int] = {}
    for a in alerts:
        if a["state"] == "firing":
            firing[a["entity"]] = firing.get(a["entity"], 0) + 1
    rows = []
    for key, part in frame.groupby("key", sort=False):
        stories = int(part["unique_volume"].sum())
        negative = part["negative_share"] * part["unique_volume"]
        sentiment = part["mean_sentiment"] * part["unique_volume"]
        rows.append({"entity": key, "name": names.get(key, key), "volume": int(part["volume"].sum()),
                     "unique_volume": stories, "reprints": int(part["reprints"].sum()),
                     "mean_sentiment": _clean(float(sentiment.sum() / stories)) if stories else None,
                     "negative_share": _clean(float(negative.sum() / stories)) if stories else None,
                     "alerts": firing.get(key, 0),
                     "spark_volume": [int(v) for v in part["unique_volume"]],
                     "spark_sentiment": [_clean(float(v)) for v in part["mean_sentiment"]]})
    rows.sort(key=lambda r: (-r["alerts"], -r["unique_volume"], r["entity"]))
    return {"window": window, "since": utc(bounds[0]).isoformat(), "until": utc(bounds[1]).isoformat(),
            "entities": rows}


def entity_series(store: MonitorStore, entity: str, *, window: str = "1h", span: int = 7 * 86400) -> dict:
    """One entity's aggregates per window over the last ``span`` and its alerts."""
    w = parse_window(window)
    bounds = time_range(store, w, span=span)
    if bounds is None:
        return {"entity": entity, "window": window, "points": [], "alerts": []}
    frame = aggregate(store, w, since=bounds[0], until=bounds[1], keys=[entity])
    points = [{"time": utc(int(r.window_start)).isoformat(), "epoch": int(r.window_start), "volume": int(r.volume),
               "unique_volume": int(r.unique_volume), "reprints": int(r.reprints),
               "mean_sentiment": _clean(float(r.mean_sentiment)), "negative_share": _clean(float(r.negative_share)),
               "buzz": _clean(float(r.buzz))} for r in frame.itertuples(index=False)]
    alerts = store.alerts(since=bounds[0], entity=entity, limit=1000)
    return {"entity": entity, "window": window, "points": points, "alerts": alerts}
