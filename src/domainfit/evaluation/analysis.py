"""Error analysis: which labels get mixed up, and where the model is wrong but sure."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

__all__ = ["top_confused_pairs", "most_confident_mistakes"]


def top_confused_pairs(
    y_true: Sequence[str], y_pred: Sequence[str], k: int = 20
) -> list[tuple[str, str, int]]:
    """The ``k`` most frequent (true label, predicted label) mistakes.

    Args:
        y_true: gold labels, shape (n,).
        y_pred: predicted labels, shape (n,).
        k: how many pairs to return at most.

    Returns:
        ``(true, pred, count)`` tuples with ``true != pred``, most frequent first; ties
        are ordered by true label, then predicted label, so the output is deterministic.

    Raises:
        ValueError: if the lengths differ or ``k`` is negative.

    Example:
        >>> top_confused_pairs(["a", "a", "b"], ["b", "b", "b"])
        [('a', 'b', 2)]
    """
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} gold labels but {len(y_pred)} predictions")
    if k < 0:
        raise ValueError(f"k must be non-negative, got {k}")
    counts = Counter((str(t), str(p)) for t, p in zip(y_true, y_pred) if t != p)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [(t, p, c) for (t, p), c in ranked[:k]]


def most_confident_mistakes(
    texts: Sequence[str] | None,
    y_true: Sequence[str],
    y_pred: Sequence[str],
    confidences: Sequence[float] | np.ndarray,
    n: int = 10,
) -> list[dict]:
    """The ``n`` wrong predictions the model was most confident about.

    These are the first rows to read: they are often label noise in the test set, or a
    systematic blind spot of the model.

    Args:
        texts: input texts, shape (n_examples,), or ``None`` to leave ``text`` empty.
        y_true: gold labels.
        y_pred: predicted labels.
        confidences: confidence of each prediction (e.g. maximum class probability).
        n: how many mistakes to return at most.

    Returns:
        Dicts with ``index`` (row in the input), ``text``, ``true``, ``pred`` and
        ``confidence``, highest confidence first (ties by index).

    Raises:
        ValueError: if the input lengths differ or ``n`` is negative.

    Example:
        >>> most_confident_mistakes(["hi", "yo"], ["a", "b"], ["b", "b"], [0.9, 0.7])
        [{'index': 0, 'text': 'hi', 'true': 'a', 'pred': 'b', 'confidence': 0.9}]
    """
    conf = np.asarray(confidences, dtype=float).ravel()
    lengths = {len(y_true), len(y_pred), len(conf)} | ({len(texts)} if texts is not None else set())
    if len(lengths) != 1:
        raise ValueError(
            "texts, y_true, y_pred and confidences must have the same length, got "
            f"{sorted(lengths)}"
        )
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    wrong = [i for i in range(len(y_true)) if y_true[i] != y_pred[i]]
    wrong.sort(key=lambda i: (-conf[i], i))
    return [
        {
            "index": i,
            "text": None if texts is None else texts[i],
            "true": y_true[i],
            "pred": y_pred[i],
            "confidence": float(conf[i]),
        }
        for i in wrong[:n]
    ]
