"""Two-sample drift statistics between a reference set of texts and a current one.

Each check returns a :class:`Signal`: a p-value, an effect size with the floor it must pass
to count, and a sentence. Drift is found when a check is significant after a Bonferroni
correction over the checks that ran *and* its effect passes the floor (so that a huge,
trivial change does not page anyone):

* ``embedding``: maximum mean discrepancy between the text vectors (Gaussian kernel, median
  bandwidth), p-value from a permutation test; the effect is MMD² itself, with no floor
  (the vectors' scale differs between models).
* ``prediction_mix``: population stability index of the predicted labels (floor 0.1, the
  usual "moderate shift") with a chi-square test of the 2 × labels count table.
* ``confidence``: Kolmogorov–Smirnov test of the top scores (floor: a KS statistic of 0.1).
* ``low_confidence``: the share of texts below the reference's 5th score percentile (or a
  given threshold, e.g. a bundle's out-of-scope threshold), Fisher's exact test (floor: 3
  points more or fewer).
* ``length``: KS test of the character lengths (floor 0.1).
* ``script``: the dominant writing system of each text (Latin, Han, Cyrillic, …), PSI and
  chi-square as for the label mix (floor 0.1).

numpy and scipy only; no model here (see :mod:`domainfit.improve.drift`).
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["Signal", "mmd_test", "mix_test", "ks_test", "rate_test", "dominant_script", "decide", "psi"]


@dataclass
class Signal:
    """One drift check. ``drift`` is set by :func:`decide`."""

    name: str
    p_value: float
    effect: float
    floor: float
    summary: str
    drift: bool = False
    details: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _rbf_bandwidth(x: np.ndarray) -> float:
    """The median distance between pooled vectors (on at most 500 of them)."""
    sample = x[:500]
    sq = (sample * sample).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * sample @ sample.T, 0)
    median = float(np.median(d2[np.triu_indices(len(sample), 1)])) if len(sample) > 1 else 1.0
    return median if median > 0 else 1.0


def mmd_test(reference: np.ndarray, current: np.ndarray, permutations: int = 500, seed: int = 0) -> Signal:
    """Maximum mean discrepancy (biased MMD², Gaussian kernel with the median heuristic)
    between two sets of vectors, with a permutation p-value (all permutations in one matrix
    product)."""
    x = np.concatenate([reference, current]).astype(np.float64)
    m, n = len(reference), len(current)
    sq = (x * x).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0)
    kernel = np.exp(-d2 / _rbf_bandwidth(np.concatenate([reference[:250], current[:250]]).astype(np.float64)))
    rng = np.random.default_rng(seed)
    weights = np.empty((m + n, permutations + 1))
    base = np.concatenate([np.full(m, 1 / m), np.full(n, -1 / n)])
    weights[:, 0] = base
    for p in range(1, permutations + 1):
        weights[:, p] = base[rng.permutation(m + n)]
    stats = ((kernel @ weights) * weights).sum(0)
    observed = float(stats[0])
    p_value = float((1 + (stats[1:] >= observed).sum()) / (permutations + 1))
    return Signal("embedding", p_value, observed, 0.0,
                  f"MMD² {observed:.4f} between the text vectors ({m} vs {n} texts, {permutations} permutations)",
                  details={"mmd2": observed, "permutations": permutations, "reference_n": m, "current_n": n})


def psi(reference: Counter, current: Counter, keys: Sequence[str] | None = None, eps: float = 1e-4) -> float:
    """Population stability index Σ (c − r)·ln(c / r) over the categories' shares."""
    keys = list(keys or sorted(set(reference) | set(current)))
    r_total, c_total = max(sum(reference.values()), 1), max(sum(current.values()), 1)
    r = np.array([reference.get(k, 0) / r_total for k in keys]) + eps
    c = np.array([current.get(k, 0) / c_total for k in keys]) + eps
    return float(((c - r) * np.log(c / r)).sum())


def mix_test(name: str, reference: Sequence[str], current: Sequence[str], floor: float = 0.1,
             what: str = "predicted labels") -> Signal:
    """PSI and a chi-square test of two category mixes."""
    from scipy.stats import chi2_contingency

    ref, cur = Counter(reference), Counter(current)
    keys = sorted(set(ref) | set(cur))
    value = psi(ref, cur, keys)
    if len(keys) < 2:
        p_value = 1.0
    else:
        table = np.array([[ref.get(k, 0) for k in keys], [cur.get(k, 0) for k in keys]])
        p_value = float(chi2_contingency(table)[1])
    shares = {k: (ref.get(k, 0) / max(len(reference), 1), cur.get(k, 0) / max(len(current), 1)) for k in keys}
    moved = sorted(shares.items(), key=lambda kv: -abs(kv[1][1] - kv[1][0]))[:10]
    named = ", ".join(f"{k} {a:.1%}→{b:.1%}" for k, (a, b) in moved[:3])
    return Signal(name, p_value, value, floor, f"PSI {value:.3f} of the {what} (largest moves: {named})",
                  details={"psi": value, "shares": {k: {"reference": a, "current": b} for k, (a, b) in moved}})


def ks_test(name: str, reference: np.ndarray, current: np.ndarray, floor: float = 0.1, what: str = "") -> Signal:
    """Kolmogorov–Smirnov test of two samples of numbers; the effect is the KS statistic."""
    from scipy.stats import ks_2samp

    result = ks_2samp(reference, current)
    ref_mean, cur_mean = float(np.mean(reference)), float(np.mean(current))
    return Signal(name, float(result.pvalue), float(result.statistic), floor,
                  f"{what}: mean {ref_mean:.3g} → {cur_mean:.3g} (KS {result.statistic:.3f})",
                  details={"reference_mean": ref_mean, "current_mean": cur_mean})


def rate_test(name: str, reference: np.ndarray, current: np.ndarray, floor: float = 0.03, what: str = "") -> Signal:
    """Fisher's exact test of two rates (boolean arrays); the effect is the rate difference."""
    from scipy.stats import fisher_exact

    a, b = int(reference.sum()), int(current.sum())
    _, p_value = fisher_exact([[a, len(reference) - a], [b, len(current) - b]])
    r, c = a / max(len(reference), 1), b / max(len(current), 1)
    return Signal(name, float(p_value), abs(c - r), floor, f"{what}: {r:.1%} → {c:.1%}",
                  details={"reference_rate": r, "current_rate": c})


_SCRIPTS = ("LATIN", "CJK", "HIRAGANA", "KATAKANA", "HANGUL", "CYRILLIC", "ARABIC", "HEBREW", "GREEK", "DEVANAGARI",
            "THAI")


def dominant_script(text: str) -> str:
    """The writing system of most of a text's letters (``Han`` for CJK ideographs), ``none``
    for a text without letters."""
    counts: Counter = Counter()
    for ch in text:
        if not ch.isalpha():
            continue
        name = unicodedata.name(ch, "")
        script = next((s for s in _SCRIPTS if name.startswith(s)), "other")
        counts["Han" if script == "CJK" else script.title()] += 1
    return counts.most_common(1)[0][0] if counts else "none"


def decide(signals: list[Signal], alpha: float = 0.05) -> bool:
    """Mark each signal whose p-value is below ``alpha`` over the number of signals and whose
    effect reaches its floor; True when any is."""
    k = max(len(signals), 1)
    for s in signals:
        s.drift = bool(s.p_value < alpha / k and s.effect >= s.floor)
    return any(s.drift for s in signals)
