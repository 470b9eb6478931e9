"""Ranking metrics over held-out interactions, full ranking over the catalogue.

For each test user the recommender ranks every item except those in the user's training
history (any rating); the user's test items are the relevant ones.

* ``recall@k``: share of a user's test items in the top ``k``, averaged over users;
* ``ndcg@k``: binary gains, the ideal putting all test items first;
* ``mrr@k``: 1 / rank of the first test item in the top ``k`` (0 when none);
* ``coverage@k``: share of the catalogue that appears in anyone's top ``k``;
* ``cold_recall@k``: share of test (user, item) pairs found, over items with fewer than
  ``cold_threshold`` likes in training.

Test users the bundle does not know are left out and counted (``unknown_users``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .data import Interactions, read_interactions
from .model import Recommender

__all__ = ["ranking_metrics", "evaluate_bundle", "user_metrics"]


def user_metrics(top: np.ndarray, relevant: set[int], k: int) -> tuple[float, float, float]:
    """``(recall, ndcg, mrr)`` of one user's ranked item indices."""
    hits = [int(i) in relevant for i in top[:k]]
    n_hits = sum(hits)
    recall = n_hits / len(relevant)
    dcg = sum(1.0 / np.log2(r + 2) for r, h in enumerate(hits) if h)
    ideal = sum(1.0 / np.log2(r + 2) for r in range(min(len(relevant), k)))
    first = next((r for r, h in enumerate(hits) if h), None)
    return recall, dcg / ideal, (1.0 / (first + 1)) if first is not None else 0.0


def ranking_metrics(rankings: dict[int, np.ndarray], test: dict[int, set[int]], counts: np.ndarray,
                    n_items: int, *, k: int = 10, cold_threshold: int = 5) -> dict:
    """The metrics of ``rankings`` (user → top item indices) against ``test`` (user → items),
    with the per-user values kept for bootstrap intervals (``per_user``)."""
    recalls, ndcgs, mrrs, shown = [], [], [], set()
    cold_found = cold_total = 0
    per_user = []
    for user, relevant in test.items():
        top = rankings[user][:k]
        shown.update(int(i) for i in top)
        r, n, m = user_metrics(top, relevant, k)
        recalls.append(r)
        ndcgs.append(n)
        mrrs.append(m)
        top_set = set(int(i) for i in top)
        cold = [i for i in relevant if counts[i] < cold_threshold]
        c_hits = sum(i in top_set for i in cold)
        cold_found += c_hits
        cold_total += len(cold)
        per_user.append((r, n, m, c_hits, len(cold)))
    return {f"recall@{k}": float(np.mean(recalls)) if recalls else 0.0,
            f"ndcg@{k}": float(np.mean(ndcgs)) if ndcgs else 0.0,
            f"mrr@{k}": float(np.mean(mrrs)) if mrrs else 0.0,
            f"coverage@{k}": len(shown) / n_items if n_items else 0.0,
            f"cold_recall@{k}": cold_found / cold_total if cold_total else 0.0,
            "users": len(test), "test_pairs": int(sum(len(v) for v in test.values())), "cold_pairs": cold_total,
            "per_user": np.array(per_user, dtype=np.float64)}


def evaluate_bundle(rec: Recommender, test_file: str | Path, columns: dict[str, str] | None = None, *,
                    k: int = 10, cold_threshold: int = 5, positive_rating: float | None = None,
                    skip_unknown_items: bool = False) -> dict:
    """Evaluate a recommender on a file of held-out interactions (only its positives count)."""
    test: Interactions = read_interactions(test_file, rec.items, columns, threshold=positive_rating,
                                           on_unknown_items="skip" if skip_unknown_items else "error")
    wanted: dict[str, set[int]] = {}
    for u, i, p in zip(test.user, test.item, test.positive):
        if p:
            wanted.setdefault(test.users[u], set()).add(int(i))
    known = [u for u in wanted if rec.known_user(u)]
    unknown = len(wanted) - len(known)
    rankings: dict[int, np.ndarray] = {}
    relevant: dict[int, set[int]] = {}
    for start in range(0, len(known), 256):
        batch = known[start:start + 256]
        hist = rec.user_histories(batch)
        recs = rec.recommend(hist, k, reasons=False)
        for j, (user, row) in enumerate(zip(batch, recs)):
            rankings[start + j] = np.array([rec.items.index[r["item"]] for r in row], dtype=np.int64)
            relevant[start + j] = wanted[user]
    result = ranking_metrics(rankings, relevant, rec.counts, rec.n_items, k=k, cold_threshold=cold_threshold)
    result.pop("per_user")
    result["unknown_users"] = unknown
    return result
