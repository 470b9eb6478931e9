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

Two more read counts rather than one series (:func:`binomial_tail` for a share of stories,
:func:`poisson_tail` for a number of stories): their statistic is an exact tail probability
written as a z-score, which stays honest for the small counts of one company's hour.

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

__all__ = ["ABS_STD_FLOOR", "REL_STD_FLOOR", "rolling_zscore", "ewma_zscore", "cusum", "DETECTORS", "detect",
           "binomial_tail", "poisson_tail", "trailing_sums"]

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


def _tail_z(p: np.ndarray) -> np.ndarray:
    """A tail probability as the standard normal quantile with the same upper tail (finite:
    a probability under 1e-300 counts as 1e-300, about 37 standard errors)."""
    from scipy.stats import norm

    return norm.isf(np.clip(p, 1e-300, 1.0))


def trailing_sums(x: np.ndarray, window: int, *, inclusive: bool = False) -> np.ndarray:
    """Per position ``t`` of the last axis: the sum of the up to ``window`` values before ``t``
    (``inclusive``: ending at ``t``)."""
    c = np.concatenate([np.zeros(x.shape[:-1] + (1,)), np.cumsum(x, axis=-1)], axis=-1)
    t = np.arange(x.shape[-1]) + (1 if inclusive else 0)
    return c[..., t] - c[..., np.maximum(t - window, 0)]


def _scan(tails: list[np.ndarray]) -> np.ndarray:
    """The smallest of the tail probabilities of the spans 1..m, times m (Bonferroni: the
    scan looked m times), as a z-score."""
    smallest = np.minimum.reduce(tails) if len(tails) > 1 else tails[0]
    return _tail_z(np.minimum(smallest * len(tails), 1.0))


def binomial_tail(k, n, *, window: int = 168, min_count: int = 24, span: int = 1, start: int = 0) -> np.ndarray:
    """How surprising the last windows' negative stories are against the share of the
    ``window`` windows before them, ``p0 = (sum k + 1) / (sum n + 2)`` (pooled; add-one, so a
    clean history is not a share of exactly zero): the exact binomial upper tail ``P(X >= k)``
    of the ``k`` negative stories of ``n`` in the window, or pooled over the last 2..``span``
    windows when that is more surprising (a scan: a surge that builds over a few windows is
    judged on them together; the smallest tail is multiplied by ``span``), as a z-score. One
    negative story of one is no surprise (about 1 for a 12% baseline), nine of ten is (about
    7). NaN where ``n_t`` is 0 or NaN, or the baseline holds fewer than ``min_count`` stories,
    and before position ``start`` (not computed: the windows already judged). Along the last
    axis: a ``(keys, windows)`` matrix gives one series per key."""
    from scipy.stats import binom

    k, n = np.nan_to_num(np.asarray(k, np.float64)), np.nan_to_num(np.asarray(n, np.float64))
    cut = lambda a: a[..., start:]  # noqa: E731
    tails, enough = [], None
    for m in range(1, span + 1):
        recent_k, recent_n = trailing_sums(k, m, inclusive=True), trailing_sums(n, m, inclusive=True)
        past_k, past_n = _shift(trailing_sums(k, window), m - 1), _shift(trailing_sums(n, window), m - 1)
        p0 = (past_k + 1.0) / (past_n + 2.0)
        tails.append(binom.sf(cut(recent_k) - 1, cut(recent_n).astype(np.int64), cut(p0)))
        if m == 1:
            enough = past_n >= min_count
    return _placed(np.where(cut((n > 0) & enough), _scan(tails), np.nan), k.shape, start)


def poisson_tail(x, *, window: int = 168, min_periods: int = 24, span: int = 1, start: int = 0) -> np.ndarray:
    """How surprising a window's count ``x_t`` is against the ``window`` windows with data
    before it: their mean ``lambda = (sum + 1) / (windows + 1)`` (so a company never seen has a
    small, not a zero, rate) and their dispersion ``phi = max(1, variance / mean)``. The exact
    upper tail ``P(X >= x_t)`` of a Poisson count (``phi = 1``) or, where the history is
    burstier than that, of a negative binomial with the same mean and variance ``phi *
    lambda``; with ``span`` > 1 also of the sum of the last 2..``span`` windows (a scan, as in
    :func:`binomial_tail`); as a z-score. Counts are what a z-score of the standard deviation
    handles worst: a quiet company's deviation is near zero, so two stories look like a storm;
    the tail weighs them by the rate, and the dispersion keeps a company often named in
    bursts from alerting on every burst. NaN where ``x_t`` is NaN or fewer than ``min_periods``
    windows with data came before, and before position ``start`` (not computed)."""
    x = np.asarray(x, np.float64)
    seen = np.isfinite(x)
    counts = np.where(seen, x, 0.0)
    observed = seen.astype(np.float64)
    cut = lambda a: a[..., start:]  # noqa: E731
    tails = []
    for m in range(1, span + 1):
        windows = cut(_shift(trailing_sums(observed, window), m - 1))
        past = cut(_shift(trailing_sums(counts, window), m - 1))
        squares = cut(_shift(trailing_sums(counts ** 2, window), m - 1))
        tails.append(_count_tail(cut(trailing_sums(counts, m, inclusive=True)), m, past, squares, windows))
    enough = trailing_sums(observed, window) >= min_periods
    return _placed(np.where(cut(seen & enough), _scan(tails), np.nan), x.shape, start)


def _placed(values: np.ndarray, shape: tuple, start: int) -> np.ndarray:
    """``values`` (positions ``start`` on) in a NaN array of ``shape``."""
    if start == 0:
        return values
    out = np.full(shape, np.nan)
    out[..., start:] = values
    return out


def _count_tail(recent, m: int, past, squares, windows) -> np.ndarray:
    """``P(X >= recent)`` for the sum of ``m`` windows, from the per-window mean and dispersion
    of the history (sum, sum of squares, windows with data)."""
    from scipy.stats import nbinom, poisson

    rate = m * (past + 1.0) / (windows + 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = past / np.maximum(windows, 1.0)
        variance = (squares - windows * mean ** 2) / np.maximum(windows - 1.0, 1.0)
        phi = np.where(mean > 0, np.maximum(variance / np.maximum(mean, 1e-12), 1.0), 1.0)
    tail = poisson.sf(recent - 1, rate)
    bursty = phi > 1.0 + 1e-9
    if bursty.any():
        r = np.where(bursty, rate / np.where(bursty, phi - 1.0, 1.0), 1.0)  # mean rate, variance phi * rate
        tail = np.where(bursty, nbinom.sf(recent - 1, r, r / (r + rate)), tail)
    return tail


def _shift(x: np.ndarray, m: int) -> np.ndarray:
    """``x`` moved ``m`` positions later along the last axis (the first ``m`` become 0)."""
    if m == 0:
        return x
    out = np.zeros_like(x)
    out[..., m:] = x[..., :-m]
    return out
