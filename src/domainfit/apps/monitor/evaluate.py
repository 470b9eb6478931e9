"""Evaluate a monitoring bundle's sentiment on labelled sentences."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...core.errors import ConfigError
from .bundle import calibrated, mapping_of, read_bundle
from .recipe import SENTIMENTS

__all__ = ["evaluate_bundle"]


def evaluate_bundle(bundle: str | Path, data: Any, *, text_column: str = "text", label_column: str = "label",
                    scorer: str = "stream", batch_size: int = 64) -> dict:
    """Accuracy and macro-F1 of the bundle's sentiment on ``data`` (a file or rows whose labels
    are ``positive``, ``negative`` or ``neutral``).

    Args:
        scorer: ``stream`` (the model that scores ingested documents: the int8 copy where the
            bundle has one) or ``model`` (the trained torch model).

    Returns:
        ``accuracy``, ``macro_f1``, ``rows``, ``per_class`` (precision, recall, f1, support)
        and ``scorer`` (the part that was evaluated).
    """
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    from ...data import ColumnSpec, load_dataset
    from ...inference import load

    bundle = Path(bundle)
    meta = read_bundle(bundle)
    if scorer not in ("stream", "model"):
        raise ConfigError(f"scorer {scorer!r}: choose stream or model.")
    part = meta["scorer"]["path"] if scorer == "stream" else meta["sentiment"]["path"]
    ds = load_dataset(data, task="classification", columns=ColumnSpec(text_column, label_column))
    bad = sorted({e.label for e in ds.examples} - set(SENTIMENTS))
    if bad:
        raise ConfigError(f"{data}: labels must be positive, negative or neutral; found {', '.join(bad[:10])}.")
    predictor = load(bundle / part)
    to_sentiment = {v: k for k, v in mapping_of(meta).items()}
    proba = calibrated(predictor.predict_proba([e.text for e in ds.examples], batch_size=batch_size)
                       .astype(np.float64), float(meta["sentiment"].get("temperature", 1.0)))
    predicted = [to_sentiment.get(predictor.labels[i], predictor.labels[i]) for i in proba.argmax(1)]
    gold = [e.label for e in ds.examples]
    names = [s for s in SENTIMENTS if s in set(gold) | set(predicted)]
    p, r, f, support = precision_recall_fscore_support(gold, predicted, labels=names, zero_division=0)
    return {"accuracy": float(accuracy_score(gold, predicted)),
            "macro_f1": float(f1_score(gold, predicted, labels=names, average="macro", zero_division=0)),
            "rows": len(gold), "scorer": part,
            "per_class": {n: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                              "support": int(support[i])} for i, n in enumerate(names)}}
