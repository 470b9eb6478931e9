"""Input checks shared by the metric functions; errors name the argument at fault."""

from __future__ import annotations

import numpy as np

# Probabilities a hair outside [0, 1] come from float rounding in softmax.
_TOLERANCE = 1e-6


def check_pair(y_true, y_pred) -> tuple[list[str], list[str]]:
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} gold labels but {len(y_pred)} predictions")
    if len(y_true) == 0:
        raise ValueError("no examples to evaluate")
    return [str(t) for t in y_true], [str(p) for p in y_pred]


def check_labels(labels) -> list[str]:
    labels = [str(lab) for lab in labels]
    if len(set(labels)) != len(labels):
        dupes = sorted({lab for lab in labels if labels.count(lab) > 1})
        raise ValueError(f"labels contain duplicates: {dupes}")
    return labels


def check_probs(probs, n: int, labels: list[str]) -> np.ndarray:
    probs = np.asarray(probs, dtype=float)
    if probs.shape != (n, len(labels)):
        raise ValueError(
            f"probs must have shape (n_examples, n_labels) = ({n}, {len(labels)}), "
            f"got {probs.shape}"
        )
    if not np.isfinite(probs).all() or probs.min() < -_TOLERANCE or probs.max() > 1 + _TOLERANCE:
        raise ValueError("probs must be finite probabilities in [0, 1]")
    return probs


def check_label_sets(rows, name: str) -> list[list[str]]:
    if len(rows) == 0:
        raise ValueError("no examples to evaluate")
    for i, row in enumerate(rows):
        if isinstance(row, str):
            raise ValueError(f"{name}[{i}] is the string {row!r}; expected a list of labels")
    return [[str(lab) for lab in row] for row in rows]


def as_floats(values, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float).ravel()
    if len(arr) == 0:
        raise ValueError("no examples to evaluate")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinity")
    return arr
