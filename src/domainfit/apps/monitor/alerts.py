"""Alert rules, their evaluation on closed windows, and delivery.

A rules file (YAML)::

    rules:
      - name: negative-surge          # unique name
        entity: "*"                   # every entity (default), one id, or a list of ids
        metric: negative_share        # volume | unique_volume | reprints | negative_volume | mean_sentiment
                                      # | negative_share | buzz
        window: 1h                    # 15m | 1h | 1d | ...
        detector: binomial            # threshold (the metric itself) | zscore | ewma | cusum | binomial | poisson
        direction: up                 # up: alert on a rise; down: on a fall (e.g. mean_sentiment)
        threshold: 4.0                # the detector's statistic (for `threshold`: the metric's value)
        recover: 1.0                  # the statistic under which a firing alert recovers (default threshold / 2)
        min_volume: 3                 # stories the window needs to fire
        baseline: 168                 # windows of the entity's own history the detector compares with
        min_history: 24               # windows with data the baseline needs before anything fires
        span: 3                       # binomial/poisson: also judge the last 2..3 windows pooled
        cooldown: 6h                  # no new alert for the same rule and entity within this after one fired
        params: {}                    # the detector's own settings (see detectors.py)
    sinks:                            # where alerts go (default: the log)
      - {type: log}
      - {type: jsonl, path: alerts.jsonl}
      - {type: webhook, url: "https://hooks.example.com/T0", headers_env: {Authorization: HOOK_TOKEN}}
      - {type: email, host: smtp.example.com, port: 587, from: monitor@example.com, to: [desk@example.com], starttls: true}

Detectors (see :mod:`.detectors`): ``zscore``, ``ewma`` and ``cusum`` read the metric's own
series. ``binomial`` (for ``negative_share``) and ``poisson`` (for counts) read the stories
behind it: the exact tail probability of the window's count against the entity's own history,
written as a z-score, so one negative story in a quiet hour (a share of 100%) does not look
like a surge, and 12 of 15 in a busy one does. Windows before the first stored document are
no history.

A window is judged once it has closed (by the clock in live ingest, by the documents' own
times in ``--replay``). An alert fires when the statistic reaches ``threshold`` with at least
``min_volume`` stories and the rule is not cooling down; it then stays *firing* (no repeat)
until the statistic falls under ``recover``, which records a *recovered* alert. Each alert is
stored once (rule, entity, window and state are unique), with a pending delivery per sink that
is retried until it is sent: an alert is never lost to a sink that is down.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ...core.errors import ConfigError
from .aggregates import METRICS, WindowCounts, parse_duration, parse_window, trailing_mean
from .detectors import DETECTORS, binomial_tail, detect, poisson_tail
from .sinks import Delivery, sink_from_config

__all__ = ["Rule", "Rules", "DEFAULT_RULES", "load_rules", "AlertEngine", "COUNT_METRICS"]

log = logging.getLogger("domainfit.monitor")


COUNT_METRICS = ("volume", "unique_volume", "reprints", "negative_volume")


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    entity: str | list[str] = "*"
    metric: Literal[METRICS]  # type: ignore[valid-type]
    window: str = "1h"
    detector: Literal[("threshold", "binomial", "poisson") + tuple(DETECTORS)] = "zscore"  # type: ignore[valid-type]
    direction: Literal["up", "down"] = "up"
    threshold: float
    recover: Optional[float] = None
    min_volume: int = Field(3, ge=0)
    baseline: int = Field(168, ge=2, le=10_000)
    min_history: int = Field(24, ge=2, le=10_000, description="Windows with data the baseline needs.")
    span: int = Field(1, ge=1, le=24, description="binomial/poisson: also judge the last 2..span windows pooled.")
    cooldown: str = "6h"
    params: dict[str, Any] = Field(default_factory=dict)
    documents: int = Field(5, ge=0, le=50, description="Documents listed with an alert.")

    @field_validator("window")
    @classmethod
    def _window(cls, v: str) -> str:
        parse_window(v)
        return v

    @field_validator("cooldown")
    @classmethod
    def _cooldown(cls, v: str) -> str:
        parse_duration(v, "cooldown")
        return v

    @model_validator(mode="after")
    def _recover(self) -> "Rule":
        if self.detector == "binomial" and self.metric != "negative_share":
            raise ValueError("the binomial detector judges a share: use it with metric negative_share")
        if self.detector == "poisson" and self.metric not in COUNT_METRICS:
            raise ValueError(f"the poisson detector judges a count: use it with {', '.join(COUNT_METRICS)}")
        if self.min_history > self.baseline:
            raise ValueError(f"min_history ({self.min_history}) cannot exceed baseline ({self.baseline})")
        if self.recover is not None and self._sign * self.recover > self._sign * self.threshold:
            side = "above" if self._sign > 0 else "below"
            raise ValueError(f"recover ({self.recover}) must not be {side} threshold ({self.threshold})")
        return self

    @property
    def _sign(self) -> int:
        """-1 where a threshold on the metric itself is crossed downwards (the detectors'
        statistics already point the way of ``direction``)."""
        return -1 if self.detector == "threshold" and self.direction == "down" else 1

    @property
    def seconds(self) -> int:
        return parse_window(self.window)

    def applies_to(self, key: str) -> bool:
        return self.entity == "*" or key == self.entity or (isinstance(self.entity, list) and key in self.entity)

    def levels(self) -> tuple[float, float]:
        """The fire and recover levels on the scale of :meth:`AlertEngine._statistic` (a
        higher statistic is always worse)."""
        recover = self.recover if self.recover is not None else self.threshold / 2
        return self._sign * self.threshold, self._sign * recover


class Rules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[Rule] = Field(default_factory=list)
    sinks: list[dict[str, Any]] = Field(default_factory=lambda: [{"type": "log"}])

    @model_validator(mode="after")
    def _unique(self) -> "Rules":
        names = [r.name for r in self.rules]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"rule names must be unique: {', '.join(twice)}")
        return self


DEFAULT_RULES: list[dict] = [
    # A company's news turning negative: the share of its stories labelled negative, against
    # its own last week of hours.
    {"name": "negative-surge", "metric": "negative_share", "window": "1h", "detector": "binomial",
     "threshold": 4.0, "recover": 1.0, "min_volume": 3, "baseline": 168, "span": 3, "cooldown": "6h"},
    # Far more stories about a company than usual (its unique volume, reprints not counted).
    {"name": "volume-surge", "metric": "unique_volume", "window": "1h", "detector": "poisson",
     "threshold": 4.5, "recover": 1.5, "min_volume": 5, "baseline": 168, "span": 3, "cooldown": "6h"},
]


def load_rules(path: str | Path | None, default: list[dict] | None = None) -> Rules:
    """The rules of a YAML file, checked (a mistake names the rule and field); without a file,
    ``default`` (the bundle's rules)."""
    if path is None:
        return Rules(rules=[Rule(**r) for r in (default if default is not None else DEFAULT_RULES)])
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"rules file {path} does not exist.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    try:
        return Rules.model_validate(data)
    except ValidationError as exc:
        shown = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:10])
        raise ConfigError(f"{path}: {shown}") from None


class AlertEngine:
    """Judges the rules on closed windows and delivers what fires.

    Args:
        store: the :class:`~.store.MonitorStore`.
        rules: the :class:`Rules` (rules and sinks).
        names: entity id → display name (for the alert's text).
        explain: optional ``callable(texts) -> list[explanation dict]`` for the documents an
            alert lists.
        base: folder that relative sink paths are read from.
    """

    def __init__(self, store, rules: Rules, *, names: dict[str, str] | None = None, explain=None,
                 base: Path | None = None):
        self.store, self.rules, self.names, self.explain = store, rules, names or {}, explain
        self._counts: dict[int, WindowCounts] = {}  # window length → counts read so far
        self._frames: dict[tuple, object] = {}
        self.sinks = {}
        for i, cfg in enumerate(rules.sinks):
            sink = sink_from_config(cfg, base=base)
            self.sinks[f"{i}:{sink.name}"] = sink

    def check(self, now: int, *, deliver: bool = True, start: int | None = None,
              record_deliveries: bool = True) -> list[dict]:
        """Judge every window closed by ``now`` (POSIX seconds) that was not judged yet; the
        first call of a rule judges from ``start`` (default: only the last closed window).
        Returns the new alerts (stored, with a pending delivery per sink unless
        ``record_deliveries`` is false; ``deliver`` then tries the pending ones)."""
        new = []
        sinks = list(self.sinks) if record_deliveries else []
        self._frames = {}
        for rule in self.rules.rules:
            new += self._check_rule(rule, now, start, sinks)
        self._frames = {}
        if deliver:
            self.deliver()
        return new

    def _check_rule(self, rule: Rule, now: int, start: int | None, sinks: list[str]) -> list[dict]:
        w = rule.seconds
        closed = now - now % w  # windows before this have ended
        states = self.store.rule_state(rule.name)
        default_from = closed - w if start is None else start - start % w
        judged = {e: s["checked_until"] for e, s in states.items() if s.get("checked_until") is not None}
        first = min([default_from, *judged.values()]) if judged else default_from
        if first >= closed:
            return []
        keys = None if rule.entity == "*" else ([rule.entity] if isinstance(rule.entity, str) else rule.entity)
        lead = rule.baseline * w if rule.detector != "threshold" else 0  # the detectors' own history
        asked = (w, first - lead, closed, tuple(keys) if keys else None, rule.baseline)
        frame = self._frames.get(asked)  # rules of the same window and history share one table per check
        if frame is None:
            counts = self._counts.setdefault(w, WindowCounts(self.store, w))
            frame = self._frames[asked] = counts.frame(since=first - lead, until=closed, keys=keys,
                                                       baseline=rule.baseline)
        if frame.empty:
            return []
        names = frame.attrs["keys"]  # the frame is key by key, every key the same windows
        windows = len(frame) // len(names)
        starts = frame["window_start"].to_numpy(np.int64)[:windows]
        origin = self.store.oldest_epoch() or 0
        before = starts < origin - origin % w  # windows before the first document: no data, not zero

        def grid(column: str) -> np.ndarray:
            values = frame[column].to_numpy(np.float64).reshape(len(names), windows)
            return np.where(before, np.nan, values)

        judged_from = {key: (states[key]["checked_until"] if states.get(key, {}).get("checked_until") is not None
                             else default_from) for key in names}
        first_column = int(np.searchsorted(starts, min(judged_from.values())))
        stats = self._statistic(rule, grid, first_column)
        baselines, volumes = self._baseline(rule, grid), grid("unique_volume")
        alerts, changed = [], {}
        for k, key in enumerate(names):
            if not rule.applies_to(key):
                continue
            state = dict(states.get(key) or {"firing": False, "last_fired": None, "checked_until": None})
            for j in range(int(np.searchsorted(starts, judged_from[key])), windows):
                event = self._judge(rule, int(starts[j]), volumes[k, j], stats[k, j], state)
                if event is not None:
                    row = frame.iloc[k * windows + j]
                    alerts.append(self._alert(rule, key, row, stats[k, j], event, baselines[k, j]))
            state["checked_until"] = closed
            changed[key] = state
        self.store.save_rule_state(rule.name, changed)
        stored = []
        for alert in alerts:
            alert_id = self.store.add_alert(alert, sinks)
            if alert_id is not None:
                stored.append({**alert, "id": alert_id})
        return stored

    @staticmethod
    def _statistic(rule: Rule, grid, start: int = 0) -> np.ndarray:
        """The rule's statistic per key and window, ``(keys, windows)``, oldest first; higher
        is worse. ``grid(column)`` is that aggregate as such a matrix; the exact-tail detectors
        compute only from column ``start`` on (the windows to judge)."""
        if rule.detector == "binomial":
            return binomial_tail(grid("negative_volume"), grid("unique_volume"), window=rule.baseline,
                                 min_count=rule.min_history, span=rule.span, start=start)
        if rule.detector == "poisson":
            return poisson_tail(grid(rule.metric), window=rule.baseline, min_periods=rule.min_history,
                                span=rule.span, start=start)
        series = grid(rule.metric)
        signed = series if rule.direction == "up" else -series
        if rule.detector == "threshold":
            return signed
        params = {"min_periods": rule.min_history, **rule.params}
        if rule.detector != "ewma":  # the rolling detectors compare with the rule's baseline
            params.setdefault("window", rule.baseline)
        return np.stack([detect(rule.detector, row, **params) for row in signed]) if len(signed) else signed

    @staticmethod
    def _baseline(rule: Rule, grid) -> np.ndarray:
        """What each window is compared with, for people: the metric's mean over the previous
        ``baseline`` windows (for a share, pooled over their stories; NaN where no value)."""
        if rule.metric == "negative_share":
            k = trailing_mean(np.nan_to_num(grid("negative_volume")), rule.baseline)
            n = trailing_mean(np.nan_to_num(grid("unique_volume")), rule.baseline)
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(n > 0, k / n, np.nan)
        values = grid(rule.metric)
        seen = np.isfinite(values)
        total = trailing_mean(np.where(seen, values, 0.0), rule.baseline)
        count = trailing_mean(seen.astype(np.float64), rule.baseline)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, total / count, np.nan)

    @staticmethod
    def _judge(rule: Rule, start: int, volume: float, stat: float, state: dict) -> str | None:
        """``firing``, ``recovered`` or None for one window; ``state`` is updated."""
        cooling = state["last_fired"] is not None and start - state["last_fired"] < parse_duration(rule.cooldown)
        fire, recover = rule.levels()
        if not state["firing"]:
            if np.isfinite(stat) and stat >= fire and volume >= rule.min_volume and not cooling:
                state["firing"], state["last_fired"] = True, start
                return "firing"
        elif np.isfinite(stat) and stat < recover:  # a quiet window (no stories) does not end an alert
            state["firing"] = False
            return "recovered"
        return None

    def _alert(self, rule: Rule, key: str, row, stat: float, state: str, baseline: float) -> dict:
        from .store import utc

        w = rule.seconds
        start = int(row.window_start)
        value = getattr(row, rule.metric)
        alert = {"rule": rule.name, "entity": key, "entity_name": self.names.get(key, key), "metric": rule.metric,
                 "window": rule.window, "window_start": utc(start).isoformat(), "window_start_epoch": start,
                 "time": utc(start + w).isoformat(), "epoch": start + w, "state": state,
                 "value": None if value is None or not np.isfinite(value) else float(value),
                 "baseline": float(baseline) if np.isfinite(baseline) else None,
                 "detector": rule.detector,
                 # the detector's statistic; a threshold rule's is the metric itself
                 "score": (float(value) if rule.detector == "threshold" else float(stat)) if np.isfinite(stat) else None,
                 "threshold": rule.threshold, "volume": int(row.volume), "unique_volume": int(row.unique_volume),
                 "documents": []}
        if state == "firing" and rule.documents:
            alert["documents"] = self._documents(rule, key, start, start + w)
        return alert

    def _documents(self, rule: Rule, key: str, since: int, until: int) -> list[dict]:
        negative = rule.metric in ("negative_share", "mean_sentiment")
        docs = self.store.documents(entity=key, since=since, until=until, limit=rule.documents, unique=True,
                                    order="negative" if negative else "time")
        out = [{"id": d["id"], "time": d["time"], "text": d["text"], "label": d["label"],
                "sentiment": round(float(d["sentiment"]), 4), "url": d["url"], "source": d["source"],
                "reprints": 0} for d in docs]
        if out and self.explain is not None:
            try:
                for d, explanation in zip(out, self.explain([d["text"] for d in out])):
                    d["explanation"] = explanation
            except Exception as exc:  # an explanation is a courtesy: the alert goes out without it
                log.warning("alert documents could not be explained: %s", exc)
        return out

    def deliver(self, limit: int = 100) -> dict[str, int]:
        """Try the pending deliveries once each (with the sink's own quick retries); a
        delivery that fails for a retryable reason stays pending for the next call, one that
        cannot succeed (e.g. a 400 from a webhook) is marked failed with its reason."""
        done = {"sent": 0, "pending": 0, "failed": 0}
        for alert_id, sink_key, attempts, alert in self.store.pending_deliveries(limit):
            sink = self.sinks.get(sink_key)
            if sink is None:  # the rules changed since: keep it pending for a sink with that key
                done["pending"] += 1
                continue
            ok, reason = Delivery(sink, attempts=2, backoff=0.2, max_backoff=1.0).deliver(alert)
            status = "sent" if ok else ("failed" if reason and "not retryable" in reason else "pending")
            self.store.mark_delivery(alert_id, sink_key, status, reason)
            done[status] += 1
            if status != "sent":
                log.warning("alert %s to %s: %s (%s)", alert_id, sink_key, status, reason)
        return done
