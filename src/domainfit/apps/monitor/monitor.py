"""The stream pipeline: link → de-duplicate → score → store → aggregate → alert.

    >>> m = Monitor("finance-bundle", "sqlite:///monitor.db")                       # doctest: +SKIP
    >>> m.ingest([{"id": "1", "epoch": 1767225600, "text": "Nokia shares plunge after profit warning"}])  # doctest: +SKIP
    {'received': 1, 'stored': 1, 'repeated': 0, 'alerts': []}

Each batch is written in one transaction before it is acknowledged (see :mod:`.store`). Only
documents whose id is new are scored, so sending a batch again costs a lookup. Alerts are
judged on windows that have closed: by the wall clock in live ingest, by the documents' own
times with ``replay=True`` (history backfilled as if it were live; the alerts it finds are
stored and listed, but not sent to the sinks — nobody wants last month's alerts by e-mail).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from ...core.errors import ConfigError
from .aggregates import parse_duration
from .bundle import calibrated, mapping_of, read_bundle
from .store import MonitorStore, StoredDocument

__all__ = ["Monitor"]

log = logging.getLogger("domainfit.monitor")


class Monitor:
    """A bundle at work on a database.

    Args:
        bundle: the bundle folder (``domainfit app monitor train``).
        db_url: SQLAlchemy URL of the store.
        rules: a rules YAML; default the bundle's ``rules.yaml``.
        explain: list the words that decided each alert's documents.
        batch_size: texts per model call.
    """

    def __init__(self, bundle: str | Path, db_url: str = "sqlite:///monitor.db", *, rules: str | Path | None = None,
                 explain: bool = True, batch_size: int = 64, store: MonitorStore | None = None):
        from ...inference import load
        from .alerts import AlertEngine, load_rules
        from .dedup import Deduplicator
        from .entities import EntityLinker

        self.path = Path(bundle)
        self.meta = read_bundle(self.path)
        self.store = store or MonitorStore(db_url)
        self.scorer = load(self.path / self.meta["scorer"]["path"])
        self.mapping = mapping_of(self.meta)
        missing = [v for v in self.mapping.values() if v not in self.scorer.labels]
        if missing:
            raise ConfigError(f"{self.path}: the sentiment model has no label {', '.join(missing)}.")
        self._columns = [self.scorer.labels.index(self.mapping[k]) for k in ("positive", "negative")]
        self._negative = self.mapping["negative"]
        self.temperature = float(self.meta["sentiment"].get("temperature", 1.0))
        topics = self.meta.get("topics")
        self.topics = load(self.path / topics["path"]) if topics else None
        import json

        self.linker = EntityLinker.from_dict(json.loads((self.path / self.meta["entities"]["path"])
                                                        .read_text(encoding="utf-8")))
        dedup = self.meta.get("dedup", {})
        self.dedup_window = parse_duration(dedup.get("window", "2d"), "dedup.window")
        self.dedup = Deduplicator(window_seconds=self.dedup_window, threshold=float(dedup.get("threshold", 0.7)))
        self._warm_dedup()
        rules_path = Path(rules) if rules is not None else self.path / self.meta["rules"]["path"]
        self.rules = load_rules(rules_path)
        names = {e.id: e.name for e in self.linker.entities.values()}
        base = rules_path.parent if rules is not None else Path.cwd()
        self.alerts = AlertEngine(self.store, self.rules, names=names, explain=self._explain if explain else None,
                                  base=base)
        self.batch_size = batch_size
        self._started: int | None = None  # the first document time of a replay

    def _warm_dedup(self) -> None:
        """Stories of the last de-duplication window, so that a restart still knows them."""
        newest = self.store.newest_epoch()
        if newest is None:
            return
        for doc_id, text, epoch, _cluster in self.store.recent_documents(newest - self.dedup_window):
            self.dedup.add(doc_id, text, float(epoch))

    # scoring ---------------------------------------------------------------------------
    def sentiment(self, texts: list[str]) -> tuple[np.ndarray, list[str]]:
        """Calibrated probabilities ``(n, labels)`` and the predicted label per text."""
        proba = calibrated(self.scorer.predict_proba(texts, batch_size=self.batch_size).astype(np.float64),
                           self.temperature)
        labels = [self.scorer.labels[i] for i in proba.argmax(1)]
        return proba, labels

    def _explain(self, texts: list[str]) -> list[dict]:
        records = self.scorer.explain(texts, target=self._negative)
        return [r["explanation"] for r in records]

    # ingest ------------------------------------------------------------------------------
    def ingest(self, docs: list[dict], *, replay: bool = False, now: int | None = None) -> dict:
        """Store a batch of checked documents (:func:`~.documents.check_document`) and judge
        the alerts; returns ``received``, ``stored``, ``repeated`` (ids stored before) and
        ``alerts`` (the new ones)."""
        unique = list({d["id"]: d for d in docs}.values())
        known = self.store.known_ids(d["id"] for d in unique)
        fresh = sorted((d for d in unique if d["id"] not in known), key=lambda d: d["epoch"])
        stored = 0
        if fresh:
            stored = self.store.add_documents(self._score(fresh))
        if replay:
            if self._started is None and fresh:
                self._started = min(d["epoch"] for d in fresh)
            clock = max((d["epoch"] for d in docs), default=None)
            alerts = [] if clock is None else self.check(clock, replay=True)
        else:
            alerts = self.check(now if now is not None else int(time.time()))
        return {"received": len(docs), "stored": stored, "repeated": len(docs) - stored, "alerts": alerts}

    def _score(self, docs: list[dict]) -> list[StoredDocument]:
        """Link, cluster and score a batch (sorted by time). A reprint takes its story's
        sentiment and topic instead of running the models again: it is the same story, its
        scores are not part of any mood aggregate, and 30-40% of news is reprints."""
        clusters = [self.dedup.add(d["id"], d["text"], float(d["epoch"])) for d in docs]
        ids = {d["id"] for d in docs}
        stories = {c for (c, _), d in zip(clusters, docs) if c != d["id"] and c not in ids}
        known = self.store.story_scores(sorted(stories)) if stories else {}
        available = ids | set(known)  # stories whose scores this batch will have
        scored = [i for i, ((c, _), d) in enumerate(zip(clusters, docs)) if c == d["id"] or c not in available]
        scores = self._model_scores([docs[i]["text"] for i in scored])
        by_id = {docs[i]["id"]: s for i, s in zip(scored, scores)}
        out = []
        for (cluster, similarity), d in zip(clusters, docs):
            s = by_id.get(d["id"]) or by_id.get(cluster) or known.get(cluster)
            mentions = [m.to_dict() for m in self.linker.link(d["text"])]
            out.append(StoredDocument(id=d["id"], epoch=int(d["epoch"]), text=d["text"], label=s["label"],
                                      p_positive=s["p_positive"], p_negative=s["p_negative"], cluster=cluster,
                                      similarity=float(similarity), source=d.get("source"), url=d.get("url"),
                                      topic=s["topic"], mentions=mentions))
        return out

    def _model_scores(self, texts: list[str]) -> list[dict]:
        if not texts:
            return []
        proba, labels = self.sentiment(texts)
        topics = [r["label"] for r in self.topics.predict(texts, top_k=1)] if self.topics is not None else None
        to_sentiment = {v: k for k, v in self.mapping.items()}
        return [{"label": to_sentiment.get(labels[i], labels[i]), "p_positive": float(proba[i, self._columns[0]]),
                 "p_negative": float(proba[i, self._columns[1]]), "topic": topics[i] if topics else None}
                for i in range(len(texts))]

    def check(self, now: int, *, replay: bool = False) -> list[dict]:
        """Judge the windows closed by ``now``; a replay judges from its first document on and
        sends nothing."""
        start = self._started if replay else None
        return self.alerts.check(now, deliver=not replay, start=start, record_deliveries=not replay)

    def close(self) -> None:
        self.store.close()
