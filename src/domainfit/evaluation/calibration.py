"""Calibration: does a model that says "90 % sure" turn out right 90 % of the time?

Both functions bin predictions by confidence into ``n_bins`` equal-width bins over
[0, 1]. Bin ``i`` holds confidences in ``(i / n_bins, (i + 1) / n_bins]``; the first bin
also holds exactly 0. Fifteen bins is the usual choice since Guo et al. (2017), so ECE
numbers stay comparable with published ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["expected_calibration_error", "reliability_bins"]

# Confidences a hair outside [0, 1] come from float rounding in softmax; clip, don't fail.
_TOLERANCE = 1e-6


def expected_calibration_error(
    confidences: Sequence[float] | np.ndarray,
    correct: Sequence[bool] | np.ndarray,
    n_bins: int = 15,
) -> float:
    """Expected calibration error: the count-weighted mean |accuracy - confidence| per bin.

    Args:
        confidences: shape (n,), the model's confidence in each prediction (usually the
            maximum class probability), each in [0, 1].
        correct: shape (n,), whether each prediction was right.
        n_bins: number of equal-width confidence bins.

    Returns:
        ECE in [0, 1]; 0 means perfectly calibrated at this binning. Lower is better.

    Raises:
        ValueError: on empty or mismatched inputs, non-finite confidences, confidences
            outside [0, 1], or ``n_bins < 1``.

    Example:
        >>> round(expected_calibration_error([0.8] * 5, [True, True, True, True, False]), 6)
        0.0
        >>> round(expected_calibration_error([0.99] * 4, [True, False, True, False]), 6)
        0.49
    """
    conf, hit = _check(confidences, correct, n_bins)
    idx = _bin_index(conf, n_bins)
    counts = np.bincount(idx, minlength=n_bins)
    conf_sum = np.bincount(idx, weights=conf, minlength=n_bins)
    hit_sum = np.bincount(idx, weights=hit.astype(float), minlength=n_bins)
    # |sum(hit) - sum(conf)| per bin equals count * |accuracy - mean confidence|.
    ece = np.abs(hit_sum - conf_sum).sum() / len(conf)
    return float(ece)


def reliability_bins(
    confidences: Sequence[float] | np.ndarray,
    correct: Sequence[bool] | np.ndarray,
    n_bins: int = 15,
) -> list[dict]:
    """Per-bin statistics for a reliability diagram.

    Args:
        confidences: shape (n,), confidence of each prediction, each in [0, 1].
        correct: shape (n,), whether each prediction was right.
        n_bins: number of equal-width confidence bins.

    Returns:
        ``n_bins`` dicts in ascending order, each with ``lower`` and ``upper`` (bin edges),
        ``mean_confidence`` and ``accuracy`` (``None`` for an empty bin) and ``count``.

    Raises:
        ValueError: as :func:`expected_calibration_error`.

    Example:
        >>> bins = reliability_bins([0.95, 0.95], [True, False], n_bins=10)
        >>> bins[-1]["accuracy"], bins[-1]["count"]
        (0.5, 2)
    """
    conf, hit = _check(confidences, correct, n_bins)
    idx = _bin_index(conf, n_bins)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = []
    for b in range(n_bins):
        mask = idx == b
        count = int(mask.sum())
        bins.append(
            {
                "lower": float(edges[b]),
                "upper": float(edges[b + 1]),
                "mean_confidence": float(conf[mask].mean()) if count else None,
                "accuracy": float(hit[mask].mean()) if count else None,
                "count": count,
            }
        )
    return bins


def _bin_index(conf: np.ndarray, n_bins: int) -> np.ndarray:
    inner_edges = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    return np.digitize(conf, inner_edges, right=True)


def _check(confidences, correct, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    conf = np.asarray(confidences, dtype=float).ravel()
    hit = np.asarray(correct).ravel().astype(bool)
    if len(conf) == 0:
        raise ValueError("confidences is empty")
    if len(conf) != len(hit):
        raise ValueError(f"{len(conf)} confidences but {len(hit)} correctness flags")
    if not np.isfinite(conf).all():
        raise ValueError("confidences contain NaN or infinity")
    if conf.min() < -_TOLERANCE or conf.max() > 1 + _TOLERANCE:
        raise ValueError(
            f"confidences must lie in [0, 1], got range [{conf.min():g}, {conf.max():g}]"
        )
    return np.clip(conf, 0.0, 1.0), hit
