"""Nearest items by inner product over the tower's item vectors: exact (a matrix product) or
approximate (faiss IVF, for catalogues beyond the recommender's ``exact_limit``).

The approximate index clusters the vectors into ``lists`` cells (about 4·√n by default) and
searches the ``probe`` cells nearest the query; items added later go into their cell at once.
"""

from __future__ import annotations

import numpy as np

from ...core.errors import ConfigError

__all__ = ["ExactIndex", "FaissIndex", "build_index"]


class ExactIndex:
    """Brute-force inner product (the reference the approximate index is tested against)."""

    def __init__(self, vectors: np.ndarray):
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)

    def add(self, vectors: np.ndarray) -> None:
        self.vectors = np.vstack([self.vectors, np.asarray(vectors, dtype=np.float32)])

    def search(self, queries: np.ndarray, k: int) -> np.ndarray:
        scores = np.asarray(queries, dtype=np.float32) @ self.vectors.T
        k = min(k, scores.shape[1])
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
        return np.take_along_axis(part, order, axis=1)

    def __len__(self) -> int:
        return len(self.vectors)


class FaissIndex:
    """faiss ``IndexIVFFlat`` with inner product; ``search`` returns item indices (-1 where
    fewer than ``k`` were found)."""

    def __init__(self, vectors: np.ndarray, lists: int | None = None, probe: int = 64, train_size: int | None = None,
                 seed: int = 0):
        try:
            import faiss
        except ImportError:
            raise ConfigError("catalogues this large are served through faiss: pip install 'domainfit[recommend]'") \
                from None
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n, dim = vectors.shape
        self.lists = int(lists or max(16, min(65536, int(4 * np.sqrt(n)))))
        quantizer = faiss.IndexFlatIP(dim)
        self.index = faiss.IndexIVFFlat(quantizer, dim, self.lists, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        train_size = train_size or 64 * self.lists  # faiss wants at least 39 points a cell
        sample = vectors if n <= train_size else vectors[rng.choice(n, train_size, replace=False)]
        self.index.train(sample)
        self.index.add(vectors)
        self.index.nprobe = int(probe)

    def add(self, vectors: np.ndarray) -> None:
        self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))

    def search(self, queries: np.ndarray, k: int) -> np.ndarray:
        _, found = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), int(k))
        return found

    def __len__(self) -> int:
        return self.index.ntotal


def build_index(vectors: np.ndarray, kind: str = "ivf", **settings):
    """An index over ``vectors``: ``ivf`` (faiss) or ``exact``."""
    if kind == "exact":
        return ExactIndex(vectors)
    if kind == "ivf":
        return FaissIndex(vectors, **settings)
    raise ConfigError(f"unknown index kind '{kind}' (ivf or exact)")
