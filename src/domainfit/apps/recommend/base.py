"""What every recommender component is: fitted on :class:`FitData`, scoring histories, saved
as a JSON config plus named arrays (safetensors, no pickle)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from .history import Histories

__all__ = ["Component", "FitData", "best_positions", "dot_rows"]


class FitData:
    """What components fit on: the training histories of every user, the catalogue size, the
    items' text vectors and appearance times, and the seed."""

    def __init__(self, histories: Histories, n_items: int, item_vectors: np.ndarray | None,
                 item_times: np.ndarray | None, seed: int = 0):
        self.histories, self.n_items, self.seed = histories, n_items, seed
        self.item_vectors, self.item_times = item_vectors, item_times
        self._positives = None

    @property
    def positives(self) -> sp.csr_matrix:
        """Binary ``(users, items)`` of liked items."""
        if self._positives is None:
            m = self.histories.matrix(self.n_items, 1.0, positives_only=True)
            m.data[:] = 1
            self._positives = m
        return self._positives


class Component(ABC):
    """A scorer: ``fit`` on :class:`FitData`, ``scores`` for histories, saved as config + arrays."""

    name: ClassVar[str]

    @abstractmethod
    def fit(self, data: FitData) -> "Component":
        """Learn from the training histories; returns the component."""

    @abstractmethod
    def scores(self, hist: Histories, n_items: int, context: Any = None) -> np.ndarray:
        """Raw scores ``(len(hist), n_items)`` float32 (items beyond those fitted score 0)."""

    def scores_of(self, hist: Histories, n_items: int, columns: np.ndarray, context: Any = None) -> np.ndarray:
        """Raw scores of the items ``columns`` only ``(len(hist), len(columns))``."""
        return np.asarray(self.scores(hist, n_items, context))[:, columns]

    def config(self) -> dict:
        return {}

    def arrays(self) -> dict[str, np.ndarray]:
        return {}

    @classmethod
    def load(cls, config: dict, arrays: dict[str, np.ndarray]) -> "Component":
        obj = cls(**config)
        obj.set_arrays(arrays)
        return obj

    def set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        pass


def dot_rows(U: np.ndarray, V: np.ndarray, columns: np.ndarray | None) -> np.ndarray:
    """``U @ V[columns].T`` without copying the leading run ``0, 1, 2, ...`` of ``columns``
    (sorted, unique): that part is a view of ``V``, the rest is gathered."""
    if columns is None:
        return U @ V.T
    columns = np.asarray(columns, dtype=np.int64)
    p = int(np.searchsorted(columns - np.arange(len(columns)), 1))  # length of the prefix 0..p-1
    out = np.empty((U.shape[0], len(columns)), dtype=np.float32)
    out[:, :p] = U @ V[:p].T
    if p < len(columns):
        out[:, p:] = U @ V[columns[p:]].T
    return out


def best_positions(values: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` largest of ``values`` (1-D, no NaN), best first; equal values in
    position order. A plain ``argpartition`` keeps an arbitrary few of several equal values at the
    cut, and which ones depends on the instruction set numpy's partition kernel uses, so lists
    (and figures measured on them) would differ from one CPU to another."""
    k = min(int(k), len(values))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    cut = np.partition(values, len(values) - k)[len(values) - k]  # the k-th largest
    above = np.flatnonzero(values > cut)
    chosen = np.concatenate([above, np.flatnonzero(values == cut)[:k - len(above)]])
    return chosen[np.lexsort((chosen, -values[chosen]))]
