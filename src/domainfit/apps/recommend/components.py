"""The scorers a recommender is made of, each usable alone (the baselines) or in the hybrid.

Every component maps a batch of :class:`Histories` to raw scores ``(users, items)`` (higher
is better) and saves itself as a JSON config plus named arrays (safetensors, no pickle):

* ``popularity``: how many users liked the item (log scale).
* ``itemknn``: cosine similarity between items' sets of likers, ``neighbours`` kept per item.
* ``ease`` (Steck, 2019): the closed-form item-item model ``B = I − P / diag(P)``,
  ``P = (XᵀX + λI)⁻¹``, over the ``max_items`` most-interacted items, with the user's history
  weighted by recency (``decay`` per more recent event) and ``B`` pruned to its
  ``neighbours`` largest weights per item. ``source: positives`` learns from liked items;
  ``source: all`` from every interaction, whatever its rating (what users *watch*, which
  knows items that few people liked yet).
* ``sequence``: what users interact with *next to* an item in their own timelines: pairs of
  events at most ``window`` apart in a user's time order (every rating, both directions,
  weighted ``1 / distance``), ``neighbours`` kept per item, the user's most recent events
  weighing most. It knows the sessions in which people browse and rate (a film rated just
  before or after another), which the whole-history models above average away, and it
  scores items that many people rated but few have liked yet.
* ``als``: implicit-feedback matrix factorisation (the ``implicit`` library); users are
  folded in from their history at query time, so new users need no retraining.
* ``content``: cosine between the item's text vector and the recency-weighted mean of the
  user's history vectors (the frozen encoder, no training), both centred on the catalogue's
  mean vector.
* ``tower`` (:mod:`.tower`): the text tower trained on the interactions.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ...core.errors import ConfigError
from ...core.ui import say
from .base import Component, FitData, best_positions, dot_rows
from .history import Histories, recency_weights, recent_events

__all__ = ["Component", "Popularity", "ItemKNN", "EASE", "Sequence", "ALS", "Content", "COMPONENTS", "make_component",
           "FitData"]


def _pad(scores: np.ndarray, n_items: int) -> np.ndarray:
    """Scores over the fitted items, widened with zeros to a catalogue that has grown since."""
    if scores.shape[1] >= n_items:
        return scores[:, :n_items]
    out = np.zeros((scores.shape[0], n_items), dtype=np.float32)
    out[:, :scores.shape[1]] = scores
    return out


class Popularity(Component):
    name = "popularity"

    def __init__(self):
        self.counts = np.zeros(0, dtype=np.float32)

    def fit(self, data: FitData) -> "Popularity":
        self.counts = np.asarray(data.positives.sum(0), dtype=np.float32).ravel()
        return self

    def scores(self, hist, n_items, context=None):
        row = np.log1p(_pad(self.counts[None, :], n_items))
        return np.broadcast_to(row, (len(hist), n_items))

    def scores_of(self, hist, n_items, columns, context=None):
        columns = np.asarray(columns)
        counts = np.zeros(len(columns), dtype=np.float32)
        known = columns < len(self.counts)
        counts[known] = self.counts[columns[known]]
        return np.broadcast_to(np.log1p(counts)[None, :], (len(hist), len(columns)))

    def arrays(self):
        return {"counts": self.counts}

    def set_arrays(self, arrays):
        self.counts = arrays["counts"].astype(np.float32)


class _ItemItem(Component):
    """Scores ``X_recency @ S`` for a sparse item-item matrix ``S`` over the ``cf`` items
    (row/column ``r`` of ``S`` is item ``cf[r]``)."""

    decay: float
    positives_only = True

    def __init__(self):
        self.cf = np.zeros(0, dtype=np.int64)
        self.S = sp.csr_matrix((0, 0), dtype=np.float32)
        self._position = np.zeros(0, dtype=np.int64)

    def _rows(self, items: np.ndarray) -> np.ndarray:
        """Each item's row in ``S`` (-1: not modelled)."""
        items = np.asarray(items, dtype=np.int64)
        out = np.full(len(items), -1, dtype=np.int64)
        inside = items < len(self._position)
        out[inside] = self._position[items[inside]]
        return out

    def _history(self, hist: Histories) -> sp.csr_matrix:
        """``(users, len(cf))`` recency-weighted history in ``S``'s rows."""
        recent = recent_events(self.decay)
        indptr, indices, values = [0], [], []
        for items, pos in zip(hist.items, hist.positive):
            chosen = (items[pos] if self.positives_only else items)[-recent:]
            rows = self._rows(chosen)
            weights = recency_weights(len(chosen), self.decay)
            keep = rows >= 0
            indices.append(rows[keep])
            values.append(weights[keep])
            indptr.append(indptr[-1] + int(keep.sum()))
        idx = np.concatenate(indices) if indices else np.zeros(0, dtype=np.int64)
        val = np.concatenate(values) if values else np.zeros(0)
        m = sp.csr_matrix((val.astype(np.float32), idx, np.array(indptr)), shape=(len(hist), len(self.cf)))
        m.sum_duplicates()
        return m

    def scores(self, hist, n_items, context=None):
        part = (self._history(hist) @ self.S).toarray().astype(np.float32, copy=False)
        out = np.zeros((len(hist), n_items), dtype=np.float32)
        keep = self.cf < n_items
        out[:, self.cf[keep]] = part[:, keep]
        return out

    def scores_of(self, hist, n_items, columns, context=None):
        part = (self._history(hist) @ self.S).toarray().astype(np.float32, copy=False)
        rows = self._rows(columns)
        out = np.zeros((len(hist), len(columns)), dtype=np.float32)
        have = rows >= 0
        out[:, have] = part[:, rows[have]]
        return out

    def contributions(self, history_items: np.ndarray, weights: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """``(len(history_items), len(targets))``: each history item's part of each target's
        score (for the reason shown to the user)."""
        rows, cols = self._rows(history_items), self._rows(targets)
        out = np.zeros((len(history_items), len(targets)))
        have_r, have_c = np.flatnonzero(rows >= 0), np.flatnonzero(cols >= 0)
        if len(have_r) and len(have_c):
            block = self.S[rows[have_r]][:, cols[have_c]].toarray()
            out[np.ix_(have_r, have_c)] = block * np.asarray(weights)[have_r, None]
        return out

    def arrays(self):
        S = self.S.tocsr()
        return {"cf": self.cf, "indptr": S.indptr.astype(np.int64), "indices": S.indices.astype(np.int64),
                "data": S.data.astype(np.float32)}

    def _set(self, cf: np.ndarray, S: sp.csr_matrix) -> None:
        self.cf, self.S = cf.astype(np.int64), S.tocsr()
        self._position = np.full(int(cf.max(initial=-1)) + 1, -1, dtype=np.int64)
        self._position[self.cf] = np.arange(len(self.cf))

    def set_arrays(self, arrays):
        n = len(arrays["cf"])
        self._set(arrays["cf"], sp.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]), shape=(n, n)))


def _top_per_row(dense: np.ndarray, k: int) -> sp.csr_matrix:
    """The ``k`` largest values of each row of ``dense`` as a sparse matrix."""
    n = dense.shape[0]
    k = min(k, dense.shape[1])
    if k >= dense.shape[1]:
        return sp.csr_matrix(dense)
    part = np.argpartition(-dense, k - 1, axis=1)[:, :k]
    rows = np.repeat(np.arange(n), k)
    vals = np.take_along_axis(dense, part, axis=1).ravel()
    m = sp.csr_matrix((vals.astype(np.float32), (rows, part.ravel())), shape=dense.shape)
    m.eliminate_zeros()
    return m


class EASE(_ItemItem):
    name = "ease"

    def __init__(self, l2: float = 300.0, decay: float = 0.85, source: str = "positives", max_items: int = 20_000,
                 neighbours: int = 500):
        super().__init__()
        if source not in ("positives", "all"):
            raise ConfigError("ease source is positives or all")
        self.l2, self.decay, self.source = float(l2), float(decay), source
        self.max_items, self.neighbours = int(max_items), int(neighbours)
        self.positives_only = source == "positives"

    def config(self):
        return {"l2": self.l2, "decay": self.decay, "source": self.source, "max_items": self.max_items,
                "neighbours": self.neighbours}

    def fit(self, data: FitData) -> "EASE":
        X = data.histories.matrix(data.n_items, 1.0, positives_only=self.positives_only)
        X.data[:] = 1
        counts = np.asarray(X.sum(0)).ravel()
        order = np.argsort(-counts, kind="stable")
        cf = np.sort(order[:min(self.max_items, int((counts > 0).sum()))])
        if len(cf) < counts.astype(bool).sum():
            say(f"  ease: {int((counts > 0).sum()):,} items have interactions; the {len(cf):,} most frequent are "
                f"modelled (max_items), the rest by the other parts.")
        Xc = X[:, cf].astype(np.float32)
        G = np.asarray((Xc.T @ Xc).todense(), dtype=np.float32)
        G[np.diag_indices_from(G)] += self.l2
        P = np.linalg.inv(G)
        del G
        B = P / (-np.diag(P))
        np.fill_diagonal(B, 0.0)
        del P
        self._set(cf, _top_per_row(B, self.neighbours))
        return self


class ItemKNN(_ItemItem):
    name = "itemknn"

    def __init__(self, neighbours: int = 100, decay: float = 1.0, shrink: float = 10.0):
        super().__init__()
        self.neighbours, self.decay, self.shrink = int(neighbours), float(decay), float(shrink)

    def config(self):
        return {"neighbours": self.neighbours, "decay": self.decay, "shrink": self.shrink}

    def fit(self, data: FitData) -> "ItemKNN":
        X = data.positives.astype(np.float32)
        counts = np.asarray(X.sum(0)).ravel()
        cf = np.flatnonzero(counts > 0)
        Xc = X[:, cf].tocsc()
        co = (Xc.T @ Xc).toarray()
        norms = np.sqrt(counts[cf])
        S = co / (np.outer(norms, norms) + self.shrink)
        np.fill_diagonal(S, 0.0)
        self._set(cf, _top_per_row(S.astype(np.float32), self.neighbours))
        return self


class Sequence(_ItemItem):
    name = "sequence"
    positives_only = False

    def __init__(self, window: int = 10, decay: float = 0.5, neighbours: int = 200):
        super().__init__()
        if int(window) < 1:
            raise ConfigError("sequence window must be at least 1")
        self.window, self.decay, self.neighbours = int(window), float(decay), int(neighbours)

    def config(self):
        return {"window": self.window, "decay": self.decay, "neighbours": self.neighbours}

    def fit(self, data: FitData) -> "Sequence":
        n = data.n_items
        rows, cols, vals = [], [], []
        for items in data.histories.items:
            for d in range(1, min(self.window, len(items) - 1) + 1):
                a, b = items[:-d], items[d:]
                w = np.full(len(a), 1.0 / d, dtype=np.float32)
                rows += [a, b]
                cols += [b, a]
                vals += [w, w]
        if rows:
            r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
            keep = r != c  # an item next to itself (a re-rating) says nothing
            T = sp.csr_matrix((v[keep], (r[keep], c[keep])), shape=(n, n), dtype=np.float32)  # sums repeats
        else:
            T = sp.csr_matrix((n, n), dtype=np.float32)
        cf = np.flatnonzero(np.diff(T.indptr) > 0)
        T = T[cf][:, cf].tocsr()
        self._set(cf, _top_per_sparse_row(T, self.neighbours))
        return self


def _top_per_sparse_row(m: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """The ``k`` largest stored values of each row of a sparse matrix (equal ones: the lower
    columns)."""
    m.sort_indices()
    indptr, indices, data = [0], [], []
    for r in range(m.shape[0]):
        s, e = m.indptr[r], m.indptr[r + 1]
        idx, val = m.indices[s:e], m.data[s:e]
        if e - s > k:
            part = best_positions(val, k)
            idx, val = idx[part], val[part]
        indices.append(idx)
        data.append(val)
        indptr.append(indptr[-1] + len(idx))
    out = sp.csr_matrix((np.concatenate(data) if data else np.zeros(0, np.float32),
                         np.concatenate(indices) if indices else np.zeros(0, np.int64), np.array(indptr)),
                        shape=m.shape)
    out.sort_indices()
    return out


class ALS(Component):
    name = "als"

    def __init__(self, factors: int = 64, l2: float = 0.05, iterations: int = 15, alpha: float = 2.0,
                 seed: int = 0):
        self.factors, self.l2, self.iterations = int(factors), float(l2), int(iterations)
        self.alpha, self.seed = float(alpha), int(seed)
        self.item_factors = np.zeros((0, self.factors), dtype=np.float32)

    def config(self):
        return {"factors": self.factors, "l2": self.l2, "iterations": self.iterations, "alpha": self.alpha,
                "seed": self.seed}

    def fit(self, data: FitData) -> "ALS":
        try:
            from implicit.cpu.als import AlternatingLeastSquares
        except ImportError:
            raise ConfigError("the als component needs the implicit library: pip install 'domainfit[recommend]'") \
                from None
        import threadpoolctl

        with threadpoolctl.threadpool_limits(1, "blas"):  # implicit's own advice: its threads, not BLAS's
            model = AlternatingLeastSquares(factors=self.factors, regularization=self.l2, alpha=self.alpha,
                                            iterations=self.iterations, random_state=self.seed,
                                            calculate_training_loss=False)
            model.fit(data.positives.astype(np.float32), show_progress=False)
        self.item_factors = np.asarray(model.item_factors, dtype=np.float32)
        return self

    def user_factors(self, hist: Histories) -> np.ndarray:
        """Each history folded in: the least-squares user vector given the item factors."""
        Y = self.item_factors
        n_fit, f = Y.shape
        YtY = Y.T @ Y + self.l2 * np.eye(f, dtype=np.float32)
        out = np.zeros((len(hist), f), dtype=np.float32)
        for k, (items, pos) in enumerate(zip(hist.items, hist.positive)):
            liked = np.unique(items[pos])
            liked = liked[liked < n_fit]
            if not len(liked):
                continue
            Yi = Y[liked]
            A = YtY + self.alpha * (Yi.T @ Yi)
            b = (1.0 + self.alpha) * Yi.sum(0)
            out[k] = np.linalg.solve(A, b)
        return out

    def scores(self, hist, n_items, context=None):
        return _pad(self.user_factors(hist) @ self.item_factors.T, n_items)

    def arrays(self):
        return {"item_factors": self.item_factors}

    def set_arrays(self, arrays):
        self.item_factors = arrays["item_factors"].astype(np.float32)


class Content(Component):
    """Text similarity with the frozen encoder: needs ``context.item_vectors`` (and, for a
    text of interests, ``context.encode``).

    With ``centre`` (the default), the catalogue's mean text vector (measured when fitted) is
    taken from every vector before the cosine: sentence encoders put all texts in a narrow cone,
    where what every item shares dominates the similarity; without it, MovieLens validation
    recall of this component alone was a fifth of the centred one's."""

    name = "content"

    def __init__(self, decay: float = 0.5, centre: bool = True):
        self.decay, self.centre = float(decay), bool(centre)
        self.mean = np.zeros(0, dtype=np.float32)
        self._dist = np.zeros(0)  # ‖v − mean‖ of the catalogue's first items, grown on use

    def config(self):
        return {"decay": self.decay, "centre": self.centre}

    def fit(self, data: FitData) -> "Content":
        V = data.item_vectors
        self._dist = np.zeros(0)  # distances to an earlier mean are stale
        if self.centre and V is not None and len(V):
            have = np.abs(V).sum(1) > 0  # items without text have zero vectors: not part of the cone
            self.mean = (V[have].mean(0) if have.any() else np.zeros(V.shape[1])).astype(np.float32)
        return self

    def arrays(self):
        return {"mean": self.mean}

    def set_arrays(self, arrays):
        self.mean = arrays.get("mean", np.zeros(0, dtype=np.float32)).astype(np.float32)
        self._dist = np.zeros(0)

    def _distances(self, V: np.ndarray) -> np.ndarray:
        """``‖v − mean‖`` per item of ``V`` (infinite for items without text, so that they
        weigh and score nothing), kept for the items seen so far: added items extend it."""
        have = self._dist
        if len(have) < len(V):
            new = V[len(have):]
            sq = np.einsum("ij,ij->i", new, new)
            d = np.sqrt(np.maximum(sq - 2.0 * (new @ self.mean) + float(self.mean @ self.mean), 1e-12))
            have = np.concatenate([have, np.where(sq > 0, d, np.inf)])
            self._dist = have
        return have[:len(V)]

    def scores(self, hist, n_items, context=None):
        return self.scores_of(hist, n_items, None, context)

    def _centring(self, V: np.ndarray) -> bool:
        return self.centre and len(self.mean) == V.shape[1]

    def user_vectors(self, hist: Histories, V: np.ndarray, encode=None) -> np.ndarray:
        """``(len(hist), dim)``: each history's recency-weighted mean of its liked items' (centred)
        vectors, plus its text of interests, normalised."""
        X = hist.matrix(len(V), self.decay, positives_only=True)
        centre = self._centring(V)
        if centre:  # Σ w·(v − mean)/‖v − mean‖ without making the centred matrix
            X = X.copy()
            X.data = (X.data / self._distances(V)[X.indices]).astype(np.float32)
            U = np.asarray(X @ V, dtype=np.float32) - np.asarray(X.sum(1), dtype=np.float32) * self.mean[None, :]
        else:
            U = np.asarray(X @ V, dtype=np.float32)
        if hist.text is not None and any(hist.text):
            for k, t in enumerate(hist.text):
                if t:
                    e = encode([t])[0]
                    if centre:
                        e = e - self.mean
                        e = e / max(float(np.linalg.norm(e)), 1e-12)
                    U[k] += e
        norms = np.linalg.norm(U, axis=1, keepdims=True)
        return (U / np.where(norms > 0, norms, 1.0)).astype(np.float32)

    def item_space(self, V: np.ndarray, start: int = 0) -> np.ndarray:
        """The vectors of items ``start:`` of the catalogue ``V`` as this component compares them
        (centred and normalised; zeros for items without text): the order of
        ``user_vectors @ item_space(V).T`` is the order of its scores."""
        if not self._centring(V):
            return np.asarray(V[start:], dtype=np.float32)
        d = self._distances(V)[start:]
        return ((V[start:] - self.mean[None, :]) / d[:, None]).astype(np.float32)  # 1/inf: no text stays zero

    def scores_of(self, hist, n_items, columns, context=None):
        V = context.item_vectors[:n_items]
        U = self.user_vectors(hist, V, context.encode)
        raw = dot_rows(U, V, columns)
        if not self._centring(V):
            return raw
        d = self._distances(V)
        d = d if columns is None else d[np.asarray(columns, dtype=np.int64)]
        return ((raw - (U @ self.mean)[:, None]) / d[None, :]).astype(np.float32)


COMPONENTS: dict[str, type[Component]] = {c.name: c for c in (Popularity, ItemKNN, EASE, Sequence, ALS, Content)}


def make_component(kind: str, settings: dict | None = None) -> Component:
    """A component by kind (``tower`` included) with its settings."""
    if kind == "tower":
        from .tower import TextTower

        cls: type[Component] = TextTower
    elif kind in COMPONENTS:
        cls = COMPONENTS[kind]
    else:
        raise ConfigError(f"unknown component '{kind}'; the components are "
                          f"{', '.join([*COMPONENTS, 'tower'])}")
    try:
        return cls(**(settings or {}))
    except TypeError as exc:
        raise ConfigError(f"component '{kind}': {exc}") from None
