"""Users' histories as the scorers read them: items in time order, positives marked, the time
of the last event (the moment a recommendation is made for, unless one is given)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .data import Interactions

__all__ = ["Histories", "recency_weights", "recent_events"]


def recent_events(decay: float, smallest: float = 1e-4) -> int:
    """How many of the most recent events weigh at least ``smallest`` with ``decay``."""
    if decay >= 1.0:
        return 1 << 62
    return max(1, int(np.floor(np.log(smallest) / np.log(decay))) + 1)


def recency_weights(length: int, decay: float) -> np.ndarray:
    """``decay ** r`` for the ``r``-th most recent of ``length`` events, oldest first."""
    return decay ** np.arange(length - 1, -1, -1, dtype=np.float64)


@dataclass
class Histories:
    """Histories of a batch of users (or anonymous sessions), oldest event first.

    Attributes:
        items: per user, item indices in time order (every event, any rating).
        positive: per user, a boolean mask over ``items``: the events that count as liked.
        now: per user, the moment recommended for (POSIX seconds; NaN when unknown).
        text: per user, an optional text of interests (anonymous sessions), else ``None``.
        times: per user, each event's time (NaN where unknown), or ``None``.
    """

    items: list[np.ndarray]
    positive: list[np.ndarray]
    now: np.ndarray
    text: list[str | None] | None = None
    times: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.items)

    @classmethod
    def from_interactions(cls, data: Interactions, users: np.ndarray | None = None) -> "Histories":
        """The histories of ``users`` (indices into ``data.users``; default all) from
        interactions sorted by user then time (as :func:`read_interactions` returns them)."""
        n_users = len(data.users)
        starts = np.searchsorted(data.user, np.arange(n_users), side="left")
        ends = np.searchsorted(data.user, np.arange(n_users), side="right")
        users = np.arange(n_users) if users is None else np.asarray(users)
        items, positive, times, now = [], [], [], np.full(len(users), np.nan)
        for k, u in enumerate(users):
            s, e = starts[u], ends[u]
            items.append(data.item[s:e])
            positive.append(data.positive[s:e])
            times.append(data.time[s:e])
            if e > s and not np.all(np.isnan(data.time[s:e])):
                now[k] = np.nanmax(data.time[s:e])
        return cls(items, positive, now, times=times)

    def matrix(self, n_items: int, decay: float = 1.0, positives_only: bool = True) -> sp.csr_matrix:
        """``(users, n_items)``: each event weighted ``decay ** r`` by its recency rank ``r``
        among the counted events (positives, or all), the most recent weighing 1; events whose
        weight would be below 10⁻⁴ are left out (they change no ranking, and long histories
        would cost time)."""
        keep = recent_events(decay)
        indptr, indices, values = [0], [], []
        for items, pos in zip(self.items, self.positive):
            chosen = (items[pos] if positives_only else items)[-keep:]
            if len(chosen):
                indices.append(chosen)
                values.append(recency_weights(len(chosen), decay))
            indptr.append(indptr[-1] + len(chosen))
        if indices:
            idx, val = np.concatenate(indices), np.concatenate(values)
        else:
            idx, val = np.zeros(0, dtype=np.int64), np.zeros(0)
        m = sp.csr_matrix((val.astype(np.float32), idx, np.array(indptr)), shape=(len(self.items), n_items))
        m.sum_duplicates()  # an item seen twice in an anonymous history
        return m

    def seen(self, n_items: int) -> sp.csr_matrix:
        """``(users, n_items)`` booleans: every item in the history (any rating)."""
        m = self.matrix(n_items, 1.0, positives_only=False)
        m.data[:] = 1
        return m
