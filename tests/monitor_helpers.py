"""Shared by the monitoring tests: a tiny bundle (the tiny BERT learns sentences made of its own
vocabulary) and a seeded stream with a negative surge at a known hour."""

from __future__ import annotations

import json
import random
from pathlib import Path

from conftest import WORDS
from helpers import fast_settings

T0 = 1767225600  # 2026-01-01T00:00:00Z

ENTITIES = """id,name,aliases,ticker
acme,Acme Corp,Acme Corporation|Acme,ACME
globex,Globex plc,Globex,GLBX
initech,Initech Oyj,Initech,INTC
umbrella,Umbrella AG,,UMBR
"""

_NEGATIVE = ["{n} payment failed and card blocked", "{n} card lost stolen not arrived", "{n} transfer failed still waiting",
             "{n} broken atm pin blocked", "{n} fee charge not yet money", "{n} lost payment failed weeks"]
_POSITIVE = ["{n} money back refund please", "{n} refund arrived money back", "{n} new account open top up",
             "{n} cash back exchange rate help", "{n} refund money transfer arrived", "{n} balance top up new card"]
_NEUTRAL = ["{n} open hours branch address", "{n} phone number change address", "{n} branch close hours week",
            "{n} update address phone", "{n} opening hours when branch", "{n} speak agent person phone"]
SENTIMENT = {"negative": _NEGATIVE, "positive": _POSITIVE, "neutral": _NEUTRAL}


def sentiment_rows(seed: int = 0) -> list[dict]:
    """~108 labelled sentences (each template with a few subject words)."""
    rows = []
    for label, templates in SENTIMENT.items():
        for t in templates:
            for n in ("the bank", "my bank", "a company", "the card", "the account", "our branch"):
                rows.append({"text": t.format(n=n), "label": label})
    random.Random(seed).shuffle(rows)
    return rows


def build_bundle(folder: Path, tiny_model: Path, *, int8: bool = False, rules: Path | None = None) -> Path:
    """Train a tiny monitoring bundle in ``folder / "bundle"`` (a few seconds)."""
    from domainfit.apps.monitor import load_recipe, train_bundle

    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "sentences.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in sentiment_rows()), encoding="utf-8")
    entities = folder / "entities.csv"
    entities.write_text(ENTITIES, encoding="utf-8")
    recipe = load_recipe(sentiment={"data": str(data), "model": str(tiny_model),
                                    "settings": fast_settings(**{"training.epochs": 12})},
                         entities=str(entities), rules=str(rules) if rules else None, export={"int8": int8})
    return train_bundle(recipe, folder / "bundle", overwrite=True)


def stream(*, days: int = 6, per_hour: int = 4, surge_entity: str = "Acme", surge_hour: int | None = None,
           surge_docs: int = 10, surge_hours: int = 2, reprint_share: float = 0.0, seed: int = 0) -> list[dict]:
    """Documents ``id,time,text`` from :data:`T0`: a background mix over four companies, and from
    ``surge_hour`` on ``surge_docs`` negative stories an hour about ``surge_entity``; with
    ``reprint_share``, that share of extra documents re-sends earlier stories with a prefix."""
    rng = random.Random(seed)
    names = ["Acme", "Globex", "Initech", "Umbrella"]
    docs: list[dict] = []

    filler = [w for w in WORDS if len(w) > 3]

    def add(hour: int, text: str) -> None:
        # a few words of filler in a random order make each story its own (not a reprint)
        tail = " ".join(rng.sample(filler, 6))
        docs.append({"id": f"doc-{len(docs)}", "time": T0 + hour * 3600 + rng.randint(0, 3599),
                     "text": f"{text}, {tail} ({len(docs)})"})

    for hour in range(days * 24):
        for _ in range(per_hour):
            label = rng.choices(["neutral", "positive", "negative"], [0.6, 0.25, 0.15])[0]
            add(hour, rng.choice(SENTIMENT[label]).format(n=rng.choice(names)))
        if surge_hour is not None and surge_hour <= hour < surge_hour + surge_hours:
            for _ in range(surge_docs):
                add(hour, rng.choice(_NEGATIVE).format(n=surge_entity))
    if reprint_share:
        for original in rng.sample(docs, int(len(docs) * reprint_share)):
            docs.append({"id": f"reprint-{len(docs)}", "time": original["time"] + rng.randint(60, 3000),
                         "text": "Wire: " + original["text"]})
    docs.sort(key=lambda d: d["time"])
    return docs


def write_jsonl(path: Path, docs: list[dict]) -> Path:
    path.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    return path
