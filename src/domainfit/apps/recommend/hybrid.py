"""Choosing the hybrid's weights on a validation split.

Coordinate ascent over a small grid, one (component, history bucket) weight at a time (a
change is kept when it finds more than one extra held-out item: a single one is often luck), then
the buckets' biases and niche weights, then the share of each list kept for cold items
(:func:`.model.top_k`), for ``rounds`` rounds; the objective is
``recall@k + cold_weight · cold_recall@k`` on the held-out items (cold: fewer than
``cold_threshold`` likes in training), so that the one model does well on both. The tower's
weight for items nobody interacted with stays positive: brand-new items are then ranked by
their text rather than arbitrarily.

The figures of the chosen weights on the users they were chosen on flatter them (the search
fits those users' luck too); :func:`held_out_estimate` says what to expect on other users:
each fold of the users is scored with weights chosen on the others (cross-fitting).
"""

from __future__ import annotations

import numpy as np

from .model import Hybrid

__all__ = ["choose_weights", "held_out_estimate", "hit_ranks", "slot_hits", "GRID", "SHARE_GRID"]

GRID = (-1.0, -0.5, 0.0, 0.25, 0.5, 1.0, 2.0, 3.0)
BIAS_GRID = (-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0)
SHARE_GRID = (0.0, 0.1, 0.2, 0.3)


def hit_ranks(scores: np.ndarray, rows: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """0-based expected rank of each target among its row's items (blocked items are
    ``-inf``): items scoring the same as the target count half, as a top-k cut breaks ties
    arbitrarily (counting none would reward weights that make many items tie)."""
    target_scores = scores[rows, targets][:, None]
    block = scores[rows]
    return (block > target_scores).sum(1) + ((block == target_scores).sum(1) - 1) / 2.0


def slot_hits(scores: np.ndarray, rows: np.ndarray, targets: np.ndarray, cold: np.ndarray, k: int,
              slots: int) -> np.ndarray:
    """Whether each target is in its row's list of ``k`` when at least ``slots`` of the list
    are cold items (:func:`.model.top_k`), from ranks alone: with ``c`` cold items among the
    best ``k`` scores, the list holds the best ``max(c, slots)`` cold items and the best
    ``k − max(c, slots)`` others. Ranks count ties as :func:`hit_ranks` does."""
    if slots <= 0:
        return hit_ranks(scores, rows, targets) < k
    users = np.unique(rows)
    top = np.argpartition(-scores[users], min(k, scores.shape[1]) - 1, axis=1)[:, :k]
    in_top = np.take_along_axis(scores[users], top, axis=1)
    c = (cold[top] & np.isfinite(in_top)).sum(1)
    kept = np.maximum(c, min(slots, k))[np.searchsorted(users, rows)]
    target_scores = scores[rows, targets][:, None]
    block = scores[rows]
    group = cold[targets][:, None] == cold[None, :]
    rank = ((block > target_scores) & group).sum(1) + (((block == target_scores) & group).sum(1) - 1) / 2.0
    return np.where(cold[targets], rank < kept, rank < k - kept)


def _blend(zs: dict[str, np.ndarray], weights: dict, bias, niche_w, buckets: np.ndarray,
           taste: np.ndarray | None, blocked: np.ndarray) -> np.ndarray:
    """The hybrid's scores ``(users, items)`` from standardised component scores ``zs`` (what
    :meth:`.model.Recommender.combine` computes), ``blocked`` items at ``-inf``."""
    S = np.zeros(blocked.shape, dtype=np.float32)
    for name, values in zs.items():
        w = np.asarray(weights[name], dtype=np.float32)
        if np.any(w):
            S += w[buckets][None, :] * values
    S += np.asarray(bias, dtype=np.float32)[buckets][None, :]
    if taste is not None:
        S += np.asarray(niche_w, dtype=np.float32)[buckets][None, :] * np.asarray(taste, dtype=np.float32)[:, None]
    S[blocked] = -np.inf
    return S


def choose_weights(z: dict[str, np.ndarray], rows: np.ndarray, targets: np.ndarray, blocked: np.ndarray,
                   counts: np.ndarray, *, niche: np.ndarray | None = None, edges=(1, 5, 20), k: int = 10,
                   cold_threshold: int = 5, cold_weight: float = 0.5, rounds: int = 2,
                   min_gain: float | None = None) -> tuple[Hybrid, dict]:
    """The weights that maximise the objective.

    Args:
        z: component → standardised scores ``(users, items)`` of the validation users.
        rows, targets: the held-out (user row, item) pairs. blocked: ``(users, items)`` bool,
            the items each user has seen (never recommended).
        counts: likes per item in the validation training data.
        niche: the users' standardised niche taste ``(users,)`` (see :mod:`.model`), or ``None``.
        min_gain: how much a change must raise the objective to be kept; by default one held-out
            item's worth (``1 / len(targets)``), so that a change is kept only when it finds more
            than a single extra item (which luck alone often does on a few hundred users).

    Returns:
        ``(hybrid, report)``: the report has the objective's parts for the start and the end.
    """
    names = list(z)
    if min_gain is None:
        min_gain = 1.0 / max(1, len(targets))
    n_buckets = len(edges) + 1
    buckets = np.digitize(counts, edges)
    cold = counts[targets] < cold_threshold
    weights = {name: np.zeros(n_buckets, dtype=np.float32) for name in names}
    first = "ease" if "ease" in names else names[0]
    weights[first][:] = 1.0
    if "tower" in names:
        weights["tower"][0] = 1.0
    bias = np.zeros(n_buckets, dtype=np.float32)
    niche_w = np.zeros(n_buckets, dtype=np.float32)
    masks = [buckets == b for b in range(n_buckets)]
    users = np.unique(rows)
    local = np.searchsorted(users, rows)
    zs = {name: values[users] for name, values in z.items()}
    block = blocked[users]
    taste = (niche[users] if niche is not None else np.zeros(len(users))).astype(np.float32)
    cold_items = counts < cold_threshold
    share = [0.0]

    def measure():
        S = _blend(zs, weights, bias, niche_w, buckets, taste, block)
        hit = slot_hits(S, local, targets, cold_items, k, int(np.floor(k * share[0] + 1e-9)))
        recall = float(hit.mean())
        cold_recall = float(hit[cold].mean()) if cold.any() else 0.0
        return recall + cold_weight * cold_recall, recall, cold_recall

    start = measure()
    best = start[0]
    for _ in range(rounds):
        for name in names:
            for b in range(n_buckets):
                if not masks[b].any():
                    continue
                grid = [g for g in GRID if g >= 0.25] if (name == "tower" and b == 0) else GRID
                for g in grid:
                    old = weights[name][b]
                    if g == old:
                        continue
                    weights[name][b] = g
                    value = measure()[0]
                    if value > best + min_gain + 1e-9:
                        best = value
                    else:
                        weights[name][b] = old
        for vector in ((bias, niche_w) if niche is not None else (bias,)):
            for b in range(n_buckets):
                if not masks[b].any():
                    continue
                for g in BIAS_GRID:
                    old = vector[b]
                    if g == old:
                        continue
                    vector[b] = g
                    value = measure()[0]
                    if value > best + min_gain + 1e-9:
                        best = value
                    else:
                        vector[b] = old
        for g in SHARE_GRID:
            old = share[0]
            if g == old:
                continue
            share[0] = g
            value = measure()[0]
            if value > best + min_gain + 1e-9:
                best = value
            else:
                share[0] = old
    end = measure()
    report = {"start": {"objective": start[0], "recall": start[1], "cold_recall": start[2]},
              "chosen": {"objective": end[0], "recall": end[1], "cold_recall": end[2]},
              "validation_users": int(len(users)), "cold_targets": int(cold.sum()), "k": k,
              "cold_weight": cold_weight, "cold_share": share[0]}
    return Hybrid({n: w.tolist() for n, w in weights.items()}, bias.tolist(), list(edges),
                  niche=niche_w.tolist(), cold_share=share[0], cold_threshold=cold_threshold), report


def held_out_estimate(z: dict[str, np.ndarray], rows: np.ndarray, targets: np.ndarray, blocked: np.ndarray,
                      counts: np.ndarray, *, niche: np.ndarray | None = None, folds: int = 2, seed: int = 0,
                      edges=(1, 5, 20), k: int = 10, cold_threshold: int = 5, **search) -> dict | None:
    """Recall@k and cold recall@k of weights chosen on users other than the ones scored.

    The users with held-out items are split into ``folds`` seeded parts; each part is scored
    with the weights :func:`choose_weights` picks on the other parts (same arguments; ``search``
    holds the rest of them), and the hits are pooled. ``None`` when there are fewer than two
    users per fold.
    """
    users = np.unique(rows)
    if folds < 2 or len(users) < 2 * folds:
        return None
    parts = np.array_split(np.random.default_rng(seed).permutation(users), folds)
    hit = np.zeros(len(rows), dtype=bool)
    cold_items = counts < cold_threshold
    buckets = np.digitize(counts, edges)
    for f in range(folds):
        fit = np.sort(np.concatenate([p for g, p in enumerate(parts) if g != f]))
        scored = np.sort(parts[f])
        picked = np.isin(rows, fit)
        hybrid, _ = choose_weights({n: v[fit] for n, v in z.items()}, np.searchsorted(fit, rows[picked]),
                                   targets[picked], blocked[fit], counts,
                                   niche=None if niche is None else niche[fit], edges=edges, k=k,
                                   cold_threshold=cold_threshold, **search)
        S = _blend({n: v[scored] for n, v in z.items()}, hybrid.weights, hybrid.bias, hybrid.niche, buckets,
                   None if niche is None else niche[scored], blocked[scored])
        mine = np.isin(rows, scored)
        hit[mine] = slot_hits(S, np.searchsorted(scored, rows[mine]), targets[mine], cold_items, k,
                              int(np.floor(k * hybrid.cold_share + 1e-9)))
    cold = counts[targets] < cold_threshold
    return {"recall": float(hit.mean()), "cold_recall": float(hit[cold].mean()) if cold.any() else 0.0,
            "folds": folds, "users": int(len(users)), "cold_targets": int(cold.sum())}
