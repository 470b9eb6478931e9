"""Change detectors over the time series of one metric (e.g. hourly mention count or mean
sentiment of one company).

Every detector takes a 1-D float array ``x``, one value per time window, oldest first, with
NaN for a window without data, and returns an array of the same length whose value at
position ``t`` is the detector's statistic there. They are causal: position ``t`` uses only
``x[:t+1]``, so the statistic of the newest window never changes when later windows arrive.

=============  ==========================================================================
``zscore``     :func:`rolling_zscore`: ``x_t`` against the mean and standard deviation of
               the previous ``window`` values. Catches a sudden jump.
``ewma``       :func:`ewma_zscore`: ``x_t`` against an exponentially weighted mean and
               standard deviation of all previous values. A jump, with a longer memory.
``cusum``      :func:`cusum`: sums standardised excesses over ``k``. Catches a small shift
               that persists, which no single window shows.
=============  ==========================================================================

* **Upward alarms.** Alarm on a large positive value ("higher than usual"). The z-scores
  are signed, but CUSUM only sums rises, so to detect a fall (mean sentiment dropping)
  pass ``-x`` to any of them.
* **NaN.** The statistic is NaN where ``x`` is NaN and until the baseline holds
  ``min_periods`` values; NaN values are skipped in every baseline.
* **Standard deviation floor.** A baseline's standard deviation is raised to at least
  ``max(1e-9, 0.01 * |baseline mean|)`` (:data:`ABS_STD_FLOOR`, :data:`REL_STD_FLOOR`), so a
  perfectly flat baseline gives a large but finite statistic instead of ``inf``, and a
  change of 1% of a flat non-zero level scores 1.

Example::

    z = detect("zscore", hourly_counts, window=24)
    alerts = np.flatnonzero(z > 4)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["ABS_STD_FLOOR", "REL_STD_FLOOR", "rolling_zscore", "ewma_zscore", "cusum", "DETECTORS", "detect"]

ABS_STD_FLOOR = 1e-9
REL_STD_FLOOR = 0.01


def _as_series(x) -> np.ndarray:
    """``x`` as a 1-D float64 array; raises ValueError otherwise."""
    series = np.asarray(x, dtype=np.float64)
    if series.ndim != 1:
        raise ValueError(f"x must be one-dimensional (one value per time window), got shape {series.shape}.")
    return series


def _floored(std: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """``std`` raised to the floor described in the module doc."""
    return np.maximum(std, np.maximum(ABS_STD_FLOOR, REL_STD_FLOOR * np.abs(mean)))


def _check_periods(window: int, min_periods: int) -> None:
    if not 2 <= min_periods <= window:
        raise ValueError(f"need 2 <= min_periods <= window, got min_periods={min_periods}, window={window}.")


def _rolling_baseline(x: np.ndarray, window: int, min_periods: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and floored sample standard deviation of ``x[t-window:t]`` (NaN skipped) for each
    ``t``; NaN where fewer than ``min_periods`` values are present. Shapes ``(len(x),)``."""
    padded = np.concatenate([np.full(window, np.nan), x[:-1]]) if len(x) else np.full(window, np.nan)
    previous = sliding_window_view(padded, window)[:len(x)]  # row t holds x[t-window:t]
    present = ~np.isnan(previous)
    count = present.sum(axis=1)
    enough = count >= min_periods
    values = np.where(present, previous, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = values.sum(axis=1) / count
        deviation = np.where(present, previous - mean[:, None], 0.0)
        std = np.sqrt((deviation ** 2).sum(axis=1) / (count - 1))
    std = _floored(std, mean)
    return np.where(enough, mean, np.nan), np.where(enough, std, np.nan)


def rolling_zscore(x, *, window: int = 24, min_periods: int = 6) -> np.ndarray:
    """How many standard deviations ``x_t`` lies above the mean of the previous ``window``
    values (``x_t`` itself excluded, NaN skipped, sample standard deviation, floored as in
    the module doc).

    Args:
        x: 1-D series, oldest first; NaN for a window without data.
        window: how many previous windows form the baseline.
        min_periods: fewest non-NaN baseline values for a statistic; NaN before that.

    Returns:
        float array shaped like ``x``.

    Raises:
        ValueError: ``x`` is not 1-D, or not ``2 <= min_periods <= window``.

    Example: ``rolling_zscore([1, 2, 1, 2, 1, 2, 9], min_periods=6)[-1]`` is about 13.
    """
    series = _as_series(x)
    _check_periods(window, min_periods)
    mean, std = _rolling_baseline(series, window, min_periods)
    return (series - mean) / std


def ewma_zscore(x, *, alpha: float = 0.1, min_periods: int = 6) -> np.ndarray:
    """How many exponentially weighted standard deviations ``x_t`` lies above the
    exponentially weighted mean of the previous values.

    A value ``j`` non-NaN steps back weighs ``(1 - alpha) ** j``; the mean and the
    (bias-corrected) variance use those weights exactly from the first value on, as
    ``pandas.Series.ewm(alpha=alpha, adjust=True).std(bias=False)`` does, so the first
    statistics are not inflated by a variance that starts at zero. Updated with West's
    weighted algorithm, which does not lose precision on a large level.

    Args:
        x: 1-D series, oldest first; NaN for a window without data (skipped).
        alpha: weight of the newest value, in (0, 1); ``2 / alpha - 1`` is about the
            number of windows it remembers.
        min_periods: fewest non-NaN previous values for a statistic; NaN before that.

    Returns:
        float array shaped like ``x``.

    Raises:
        ValueError: ``x`` is not 1-D, ``alpha`` not in (0, 1), or ``min_periods < 2``.
    """
    series = _as_series(x)
    if not 0.0 < alpha < 1.0 or min_periods < 2:
        raise ValueError(f"need 0 < alpha < 1 and min_periods >= 2, got alpha={alpha}, min_periods={min_periods}.")
    decay = 1.0 - alpha
    out = np.full(len(series), np.nan)
    seen, weight, weight_sq, mean, spread = 0, 0.0, 0.0, 0.0, 0.0
    for t, value in enumerate(series):
        if np.isnan(value):
            continue
        if seen >= min_periods:
            variance = spread / (weight - weight_sq / weight)
            out[t] = (value - mean) / _floored(np.sqrt(variance), mean)
        weight, weight_sq = decay * weight + 1.0, decay ** 2 * weight_sq + 1.0
        delta = value - mean
        mean += delta / weight
        spread = decay * spread + delta * (value - mean)
        seen += 1
    return out


def cusum(x, *, k: float = 0.5, window: int = 24, min_periods: int = 6) -> np.ndarray:
    """One-sided upper CUSUM ``S_t = max(0, S_{t-1} + z_t - k)``, with ``z_t`` the
    :func:`rolling_zscore` of ``x_t`` (baseline: the previous ``window`` values).

    It sums small excesses that no single window shows: with ``k = 0.5`` and an alarm at
    ``S_t > 4``, a shift of one standard deviation is caught within 10 windows about 60% of
    the time, where a single z-score above 3 almost never shows it. As the shifted values
    enter the baseline the sum stops growing, and it falls back to 0 about ``window``
    windows after a lasting shift. Without a shift ``S_t``
    exceeds 4 in about 1-2% of windows and 5 in about 0.5% (normal noise, defaults), which
    is more often than textbook CUSUM figures because the baseline is estimated from only
    ``window`` values; raise the alarm level or ``window`` to trade speed for quiet.
    (Holding the baseline fixed during an excursion was tried: it detects faster at a
    fixed level but far worse at an equal false-alarm rate, because excursions start
    mostly where the estimated baseline happens to be low.)

    Args:
        x: 1-D series, oldest first; NaN for a window without data (``S`` is NaN there and
            carries over unchanged).
        k: allowance, in standard deviations; about half the shift to detect.
        window: how many previous windows form the baseline.
        min_periods: fewest non-NaN baseline values; ``S`` is NaN and stays 0 before that.

    Returns:
        float array shaped like ``x``, >= 0 where not NaN.

    Raises:
        ValueError: ``x`` is not 1-D, ``k < 0``, or not ``2 <= min_periods <= window``.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}.")
    out = rolling_zscore(x, window=window, min_periods=min_periods)
    total = 0.0
    for t in np.flatnonzero(~np.isnan(out)):
        total = max(0.0, total + out[t] - k)
        out[t] = total
    return out


DETECTORS: dict[str, Callable[..., np.ndarray]] = {"zscore": rolling_zscore, "ewma": ewma_zscore, "cusum": cusum}


def detect(name: str, x, **params) -> np.ndarray:
    """Run the detector called ``name`` (a key of :data:`DETECTORS`) on ``x`` with ``params``.

    Raises:
        ValueError: an unknown detector name (the message lists the known ones), or a bad
            parameter value.

    Example: ``detect("cusum", -mean_sentiment, k=0.5)`` watches for sentiment falling.
    """
    try:
        detector = DETECTORS[name]
    except KeyError:
        raise ValueError(f"unknown detector {name!r}; choose one of {', '.join(sorted(DETECTORS))}.") from None
    return detector(x, **params)
