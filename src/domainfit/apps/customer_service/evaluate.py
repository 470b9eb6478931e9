"""Evaluate a customer-service bundle on labelled messages, out-of-scope ones included."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["evaluate_bundle"]


def evaluate_bundle(bundle: str | Path, data: Any, *, oos_label: str = "oos", text_column: str = "text",
                    label_column: str = "label", batch_size: int = 256, assistant=None,
                    plot: str | Path | None = None) -> dict:
    """Score a bundle on ``data`` (a file or rows with a text and a label column).

    A row is out of scope when its label is ``oos_label`` or an intent the bundle does not
    know. The assistant *accepts* a message when it answers with a confident intent.

    Returns:
        ``in_scope_accuracy`` (in-scope rows accepted with the right intent; an unanswered
        row counts as wrong), ``no_fallback_accuracy`` (the intent model alone, always
        answering), ``oos_recall`` (out-of-scope rows not accepted), ``oos_precision``
        (not-accepted rows that are out of scope), ``auroc`` of the out-of-scope score,
        ``routes`` (how many rows took each route), ``rows``, ``in_scope_rows``, ``oos_rows``.
        With ``plot``, the trade-off curve (in-scope accuracy against out-of-scope recall as
        the threshold moves) is written there as a PNG, when the data has both kinds of rows.
    """
    from ...data import ColumnSpec, load_dataset
    from ...ood import auroc
    from .assistant import Assistant

    bot = assistant or Assistant(bundle)
    ds = load_dataset(data, task="classification", columns=ColumnSpec(text_column, label_column))
    known = set(bot.meta["intent"]["intents"])
    texts = [e.text for e in ds.examples]
    gold = [e.label for e in ds.examples]
    in_scope = np.array([g in known and g != oos_label for g in gold])
    results = []
    for start in range(0, len(texts), batch_size):
        results += bot.answer_many([{"message": t, "session": None} for t in texts[start:start + batch_size]])
    accepted = np.array([r["intent"] is not None for r in results])
    right = np.array([r["candidate_intent"] == g for r, g in zip(results, gold)])
    scores = np.array([r["scores"]["out_of_scope"] for r in results])
    routes = {}
    for r in results:
        routes[r["route"]] = routes.get(r["route"], 0) + 1
    n_in, n_oos = int(in_scope.sum()), int((~in_scope).sum())
    out = {
        "rows": len(texts), "in_scope_rows": n_in, "oos_rows": n_oos,
        "in_scope_accuracy": float((accepted & right & in_scope).sum() / n_in) if n_in else None,
        "no_fallback_accuracy": float((right & in_scope).sum() / n_in) if n_in else None,
        "oos_recall": float((~accepted & ~in_scope).sum() / n_oos) if n_oos else None,
        "oos_precision": float((~accepted & ~in_scope).sum() / max((~accepted).sum(), 1)) if n_oos else None,
        "answered_precision": float((accepted & right & in_scope).sum() / max(accepted.sum(), 1)),
        "routes": routes,
        "method": bot.meta["out_of_scope"]["method"], "threshold": bot.threshold,
    }
    if n_in and n_oos:
        from ...ood import tradeoff
        from .bundle import _finite, _plot_tradeoff

        finite = _finite(scores)
        out["auroc"] = auroc(finite, in_scope)
        if plot is not None:
            curve = tradeoff(finite, right & in_scope, in_scope)
            _plot_tradeoff({out["method"]: curve}, Path(plot), "Out-of-scope trade-off")
            out["plot"] = str(plot)
    return out
