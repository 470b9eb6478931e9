"""Metrics per task: plain Python values in, a JSON-ready dict out.

Every ``*_metrics`` function returns built-in types only (float, int, str, lists and
nested dicts; ``None`` where a metric is undefined, never NaN), so the dict can be written
to ``metrics.json`` and read back equal. Each names its headline number under
``"primary_metric"``. Higher is better except for the names :func:`lower_is_better`
recognises; :func:`metric_is_better` compares two values with the right direction.

Labels are compared as strings (``1`` and ``"1"`` are the same label).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats
from sklearn.metrics import accuracy_score, f1_score, hamming_loss
from sklearn.metrics import precision_recall_fscore_support as _prfs
from sklearn.metrics import r2_score
from sklearn.preprocessing import MultiLabelBinarizer

from ._checks import as_floats, check_label_sets, check_labels, check_pair, check_probs
from .analysis import most_confident_mistakes, top_confused_pairs
from .calibration import expected_calibration_error, reliability_bins

__all__ = [
    "LOWER_IS_BETTER",
    "classification_metrics",
    "multilabel_metrics",
    "regression_metrics",
    "lower_is_better",
    "metric_is_better",
    # Re-exported so every metric is reachable from this module.
    "expected_calibration_error",
    "reliability_bins",
    "top_confused_pairs",
    "most_confident_mistakes",
]

LOWER_IS_BETTER = frozenset({"mae", "mse", "rmse", "loss", "nll", "ece", "hamming_loss"})
"""Metric names where a smaller value is better (after stripping ``eval_``-like prefixes)."""

_SPLIT_PREFIXES = ("eval_", "val_", "valid_", "test_", "train_")
# Probabilities are floored here before log() so that a confident miss costs ~27.6 nats
# instead of infinity, which would make the mean useless.
_PROB_FLOOR = 1e-12


def classification_metrics(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    probs: np.ndarray | None,
    labels: Sequence[str],
) -> dict:
    """Single-label classification metrics.

    Gold labels missing from ``labels`` (never seen in training) can never be predicted
    right: they count as errors in accuracy and F1 and get their own ``per_class`` row
    with recall 0. Macro averages run over the union of labels that occur in ``y_true``
    or ``y_pred`` (scikit-learn's default); model labels absent from both have no
    ``per_class`` row and do not drag the macro average down.

    Args:
        y_true: gold labels, shape (n,).
        y_pred: predicted labels, shape (n,).
        probs: class probabilities, shape (n, len(labels)), columns in ``labels`` order,
            or ``None``. When given, adds ``ece`` (15 bins on the maximum probability,
            against whether the arg-max label is right) and ``nll`` (mean negative log
            probability of the gold label, over examples whose gold label is in
            ``labels``; absent if there are none).
        labels: the model's labels, in column order of ``probs``.

    Returns:
        ``accuracy``, ``macro_f1``, ``micro_f1``, ``weighted_f1``, ``macro_precision``,
        ``macro_recall``, ``n``, ``n_unseen`` (gold labels outside ``labels``),
        ``unseen_labels``, ``absent_labels`` (model labels neither in ``y_true`` nor
        predicted: left out of the macro averages), ``per_class`` (``{label: {precision, recall, f1, support}}``),
        ``ece``/``nll`` when ``probs`` is given, and ``primary_metric: "accuracy"``.

    Raises:
        ValueError: on empty or mismatched inputs, duplicate labels, or ``probs`` of the
            wrong shape or with values outside [0, 1].

    Example:
        >>> m = classification_metrics(["a", "b", "c"], ["a", "b", "a"], None, ["a", "b"])
        >>> m["accuracy"], m["n_unseen"], m["per_class"]["c"]["recall"]
        (0.6666666666666666, 1, 0.0)
    """
    y_true, y_pred = check_pair(y_true, y_pred)
    labels = check_labels(labels)
    known = set(labels)
    present = set(y_true) | set(y_pred)
    used = [lab for lab in labels if lab in present] + sorted(present - known)
    precision, recall, f1, support = _prfs(y_true, y_pred, labels=used, zero_division=0)
    unseen = sorted(set(y_true) - known)
    out = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(np.mean(f1)),
        "micro_f1": float(f1_score(y_true, y_pred, labels=used, average="micro")),
        "weighted_f1": float(np.average(f1, weights=support)),
        "macro_precision": float(np.mean(precision)),
        "macro_recall": float(np.mean(recall)),
        "n": len(y_true),
        "n_unseen": sum(t not in known for t in y_true),
        "unseen_labels": unseen,
        "absent_labels": [lab for lab in labels if lab not in present],
        "per_class": _per_class(used, precision, recall, f1, support),
    }
    if probs is not None:
        out.update(_probability_metrics(y_true, check_probs(probs, len(y_true), labels), labels))
    out["primary_metric"] = "accuracy"
    return out


def multilabel_metrics(
    y_true: Sequence[Sequence[str]],
    y_pred: Sequence[Sequence[str]],
    labels: Sequence[str],
) -> dict:
    """Multi-label classification metrics (each example has a set of labels).

    Macro averages and ``per_class`` cover the labels that occur in ``y_true`` or
    ``y_pred``, as for :func:`classification_metrics`; gold labels outside ``labels``
    are kept (they can only be missed). ``hamming_loss`` is over ``labels`` plus those
    unseen labels. ``samples_f1`` scores an example with no gold and no predicted label
    as 1 (nothing to find, nothing claimed).

    Args:
        y_true: gold label sets, one list per example.
        y_pred: predicted label sets, one list per example.
        labels: the model's labels.

    Returns:
        ``micro_f1``, ``macro_f1``, ``macro_precision``, ``macro_recall``, ``samples_f1``,
        ``subset_accuracy`` (exact set match), ``hamming_loss``, ``n``, ``per_class`` and
        ``primary_metric: "micro_f1"``. F1 values are ``None`` if no example has any
        gold or predicted label.

    Raises:
        ValueError: on empty or mismatched inputs, duplicate labels, or an example given
            as a bare string instead of a list of labels.

    Example:
        >>> m = multilabel_metrics([["a", "b"], ["b"]], [["a", "b"], []], ["a", "b"])
        >>> m["subset_accuracy"], m["micro_f1"]
        (0.5, 0.8)
    """
    y_true, y_pred = check_label_sets(y_true, "y_true"), check_label_sets(y_pred, "y_pred")
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} gold label sets but {len(y_pred)} predicted sets")
    labels = check_labels(labels)
    extra = sorted({lab for row in (*y_true, *y_pred) for lab in row} - set(labels))
    classes = labels + extra
    binarizer = MultiLabelBinarizer(classes=classes)
    gold, pred = binarizer.fit_transform(y_true), binarizer.transform(y_pred)
    active = [i for i in range(len(classes)) if gold[:, i].any() or pred[:, i].any()]
    out: dict = {
        "subset_accuracy": float(accuracy_score(gold, pred)),
        "hamming_loss": float(hamming_loss(gold, pred)),
        "n": len(y_true),
    }
    if active:
        precision, recall, f1, support = _prfs(gold, pred, labels=active, zero_division=0)
        micro = f1_score(gold, pred, labels=active, average="micro", zero_division=0)
        samples = f1_score(gold, pred, average="samples", zero_division=1.0)
        per_class = _per_class([classes[i] for i in active], precision, recall, f1, support)
        out.update(
            micro_f1=float(micro),
            macro_f1=float(np.mean(f1)),
            macro_precision=float(np.mean(precision)),
            macro_recall=float(np.mean(recall)),
            samples_f1=float(samples),
            per_class=per_class,
        )
    else:
        out.update(micro_f1=None, macro_f1=None, macro_precision=None, macro_recall=None,
                   samples_f1=None, per_class={})
    out["primary_metric"] = "micro_f1"
    return out


def regression_metrics(
    y_true: Sequence[float] | np.ndarray, y_pred: Sequence[float] | np.ndarray
) -> dict:
    """Regression metrics.

    Args:
        y_true: gold values, shape (n,).
        y_pred: predicted values, shape (n,).

    Returns:
        ``mae``, ``rmse`` (lower is better), ``r2``, ``spearman``, ``pearson`` (higher is
        better; ``None`` when undefined: fewer than 2 examples or a constant input),
        ``n`` and ``primary_metric: "r2"``.

    Raises:
        ValueError: on empty, mismatched or non-finite inputs.

    Example:
        >>> m = regression_metrics([1.0, 2.0, 3.0], [1.0, 2.0, 4.0])
        >>> m["mae"], round(m["r2"], 3)
        (0.3333333333333333, 0.5)
    """
    gold, pred = as_floats(y_true, "y_true"), as_floats(y_pred, "y_pred")
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold values but {len(pred)} predictions")
    err = pred - gold
    varies = len(gold) >= 2 and np.ptp(gold) > 0
    both_vary = varies and np.ptp(pred) > 0
    return {
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "r2": float(r2_score(gold, pred)) if varies else None,
        "spearman": _finite_or_none(stats.spearmanr(gold, pred)[0]) if both_vary else None,
        "pearson": _finite_or_none(stats.pearsonr(gold, pred)[0]) if both_vary else None,
        "n": len(gold),
        "primary_metric": "r2",
    }


def lower_is_better(name: str) -> bool:
    """Whether a smaller value of metric ``name`` is better.

    Recognises :data:`LOWER_IS_BETTER` after stripping a path (``"val/"``, ``"eval."``)
    and a split prefix (``eval_``, ``val_``, ``valid_``, ``test_``, ``train_``), and any
    name ending in ``_loss`` or ``_error``.

    Example:
        >>> lower_is_better("eval_rmse"), lower_is_better("macro_f1")
        (True, False)
    """
    base = name.rsplit("/", 1)[-1].rsplit(".", 1)[-1].lower()
    for prefix in _SPLIT_PREFIXES:
        if base.startswith(prefix):
            base = base[len(prefix):]
            break
    return base in LOWER_IS_BETTER or base.endswith(("_loss", "_error"))


def metric_is_better(name: str, new: float | None, old: float | None) -> bool:
    """Whether ``new`` strictly improves on ``old`` for metric ``name``.

    A missing or NaN ``new`` is never better; anything real beats a missing or NaN
    ``old``. Ties are not improvements.

    Example:
        >>> metric_is_better("mae", 0.2, 0.3), metric_is_better("accuracy", 0.2, 0.3)
        (True, False)
    """
    if new is None or math.isnan(new):
        return False
    if old is None or math.isnan(old):
        return True
    return new < old if lower_is_better(name) else new > old


def _per_class(names, precision, recall, f1, support) -> dict[str, dict]:
    return {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(names)
    }


def _probability_metrics(y_true: list[str], probs: np.ndarray, labels: list[str]) -> dict:
    column = {lab: i for i, lab in enumerate(labels)}
    predicted = np.asarray(labels, dtype=object)[probs.argmax(axis=1)]
    correct = predicted == np.asarray(y_true, dtype=object)
    out = {"ece": expected_calibration_error(probs.max(axis=1), correct)}
    rows = [i for i, t in enumerate(y_true) if t in column]
    if rows:
        gold_probs = probs[rows, [column[y_true[i]] for i in rows]]
        out["nll"] = float(-np.mean(np.log(np.maximum(gold_probs, _PROB_FLOOR))))
    return out


def _finite_or_none(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
