"""The hybrid recommender at work: scores, filters, reasons, similar items, new items.

The hybrid's score of item ``j`` for a user ``u`` is
``Σ_c W[c, b(j)]·z_c(u, j) + bias[b(j)] + niche[b(j)]·t(u)``: each component's score
standardised over the catalogue for that user (``z``), weighted by the *history bucket*
``b(j)`` of the item (how many users liked it in training: 0, 1–4, 5–19, 20+ by default).
``t(u)`` is the user's taste for little-known items: the share of their likes that went to
items fewer than ``niche_threshold`` users liked, standardised over the training users, so
that users who like rare items are shown more of them. Weights are chosen on a validation
split (:mod:`.hybrid`), so items with much history are ranked mostly by the collaborative
parts and new ones by their text.

Cold slots: a list of ``k`` holds at least ``⌊k · cold_share⌋`` cold items (fewer than
``cold_threshold`` likes in training, items added later included), the best-scoring ones,
in the last places when the scores alone would not have put them there. A single score
cannot do this: lifting every cold item enough to reach the list floods it with them,
while a slot shows only the one the user is likeliest to want. The share is chosen on
validation like the weights (0 where it does not pay).

Standardisation is measured over the catalogue the recommender was trained on (a fixed sample
of ``reference`` items when larger), so items added later change nobody's scale. Catalogues
beyond ``exact_limit`` items are served through an approximate index over the tower's item
vectors (:mod:`.index`), and one over the content component's where the hybrid weighs it for
items without history: the items anyone interacted with are always scored exactly, and the
indexes bring the best text matches among the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ...core.errors import DomainfitError
from .base import best_positions
from .components import Component
from .data import Interactions, Items
from .history import Histories, recency_weights

__all__ = ["Hybrid", "Recommender", "MAX_K", "UnknownError", "top_k"]

MAX_K = 1000


class UnknownError(DomainfitError):
    """An unknown user or item was asked for."""


@dataclass
class Hybrid:
    """Weights per component and history bucket, a bias and a niche weight per bucket, the
    bucket edges, and the niche share's threshold and its mean and spread over users."""

    weights: dict[str, list[float]]
    bias: list[float]
    edges: list[int] = field(default_factory=lambda: [1, 5, 20])
    niche: list[float] | None = None
    niche_threshold: int = 10
    niche_stats: tuple[float, float] = (0.0, 1.0)
    cold_share: float = 0.0
    cold_threshold: int = 5

    def buckets(self, counts: np.ndarray) -> np.ndarray:
        return np.digitize(counts, self.edges)

    def cold_slots(self, k: int) -> int:
        """How many of a list of ``k`` are kept for cold items."""
        return int(np.floor(k * self.cold_share + 1e-9))

    def to_dict(self) -> dict:
        return {"weights": {k: [float(x) for x in v] for k, v in self.weights.items()},
                "bias": [float(x) for x in self.bias], "edges": list(self.edges),
                "niche": [float(x) for x in (self.niche or [0.0] * len(self.bias))],
                "niche_threshold": int(self.niche_threshold),
                "niche_stats": [float(x) for x in self.niche_stats],
                "cold_share": float(self.cold_share), "cold_threshold": int(self.cold_threshold)}


def top_k(row: np.ndarray, k: int, cold: np.ndarray | None = None, slots: int = 0) -> np.ndarray:
    """Positions of the ``k`` best finite scores of ``row``, best first (equal scores in position
    order); with ``slots``, at least that many of them from the positions where ``cold`` is true
    (the best such, in the last places, replacing the lowest-scoring others), as far as there
    are any."""
    finite = np.isfinite(row)
    kk = min(k, int(finite.sum()))
    if not kk:
        return np.zeros(0, dtype=np.int64)
    top = best_positions(row if kk == len(row) else np.where(finite, row, -np.inf), kk)
    if cold is None or slots <= 0:
        return top
    need = min(slots, kk) - int(cold[top].sum())
    if need <= 0:
        return top
    pool = np.flatnonzero(cold & finite)
    pool = pool[~np.isin(pool, top)]
    if not len(pool):
        return top
    extra = pool[np.argsort(-row[pool], kind="stable")[:need]]
    warm_at = np.flatnonzero(~cold[top])
    keep = np.ones(len(top), dtype=bool)
    keep[warm_at[len(warm_at) - len(extra):]] = False
    return np.concatenate([top[keep], extra])


def niche_share(hist: Histories, counts: np.ndarray, threshold: int) -> np.ndarray:
    """Per history, the share of liked items that fewer than ``threshold`` users liked (0 when
    nothing is liked)."""
    out = np.zeros(len(hist), dtype=np.float64)
    for k, (items, pos) in enumerate(zip(hist.items, hist.positive)):
        liked = items[pos]
        liked = liked[liked < len(counts)]
        if len(liked):
            out[k] = float(np.mean(counts[liked] < threshold))
    return out


@dataclass
class Context:
    """What content-based components read: the items' text vectors and times, and the encoder."""

    item_vectors: np.ndarray
    item_times: np.ndarray
    encode: Callable[[list[str]], np.ndarray] | None


def union_sorted(base: np.ndarray, extra: np.ndarray) -> np.ndarray:
    """The sorted union of a sorted, unique ``base`` and any ``extra`` (fast when ``base`` is a
    range ``0..m-1`` and most of ``extra`` lies beyond it, as candidates from the index do)."""
    extra = np.asarray(extra, dtype=np.int64)
    m = len(base)
    if m and base[-1] == m - 1:  # a prefix range
        return np.concatenate([base, np.unique(extra[extra >= m])])
    return np.union1d(base, extra)


def standardise(raw: np.ndarray, ref: np.ndarray | None = None) -> np.ndarray:
    """``(raw − mean) / std`` per row, the statistics taken over the columns ``ref`` (all when
    ``None``); a constant row becomes zeros."""
    part = raw if ref is None else raw[:, ref]
    mean = part.mean(1, keepdims=True, dtype=np.float64)
    std = part.std(1, keepdims=True, dtype=np.float64)
    return ((raw - mean) / np.where(std > 1e-12, std, 1.0)).astype(np.float32)


class Recommender:
    """A trained recommender (see :func:`.bundle.load_recommender` to read one from a bundle).

    Args:
        items: the catalogue. vectors: the items' text vectors ``(n, dim)`` (zeros: no text).
        components: name → fitted :class:`Component`. hybrid: the weights.
        counts: liked-by counts per item in training (items added later count 0).
        train: the training interactions (the users one can ask for by id).
        encode: texts → vectors with the bundle's encoder (new items, texts of interests).
    """

    def __init__(self, items: Items, vectors: np.ndarray, components: dict[str, Component], hybrid: Hybrid,
                 counts: np.ndarray, train: Interactions | None, encode=None, *, exact_limit: int = 50_000,
                 reference: int = 20_000, index_settings: dict | None = None, seed: int = 0,
                 trained_on: int | None = None):
        self.items, self.vectors = items, np.ascontiguousarray(vectors, dtype=np.float32)
        self.components, self.hybrid = components, hybrid
        self.counts = np.asarray(counts, dtype=np.float64)
        self.train, self.encode = train, encode
        self.exact_limit, self.reference_size, self.seed = int(exact_limit), int(reference), seed
        self.index_settings = dict(index_settings or {})
        self.trained_on = len(items) if trained_on is None else int(trained_on)
        self._user_index = train.user_index if train is not None else {}
        self._index = None
        self._text_index = None
        self._reference = None
        self._warm = None
        self.latest = float(np.nanmax(train.time)) if train is not None and len(train) and \
            not np.all(np.isnan(train.time)) else float("nan")

    # -- catalogue -----------------------------------------------------------------------------
    @property
    def n_items(self) -> int:
        return len(self.items)

    def context(self) -> Context:
        return Context(self.vectors, self.items.times, self.encode)

    def item_index(self, item: str) -> int:
        idx = self.items.index.get(str(item))
        if idx is None:
            raise UnknownError(f"unknown item '{str(item)[:60]}'")
        return idx

    def add_items(self, items: Items, vectors: np.ndarray | None = None) -> int:
        """Add items to the catalogue: they can be recommended at once. Their text vectors are
        made with the bundle's encoder, or given (``(len(items), dim)``, from the same
        encoder). Returns how many were added."""
        if not len(items):
            return 0
        clash = [i for i in items.ids if i in self.items.index]
        if clash:
            raise DomainfitError(f"item '{clash[0][:60]}' is already in the catalogue")
        if vectors is None:
            if self.encode is None:
                raise DomainfitError("this recommender has no encoder to embed new items")
            vectors = embed_items(items.texts, self.encode, self.vectors.shape[1])
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape != (len(items), self.vectors.shape[1]):
            raise DomainfitError(f"vectors of shape {vectors.shape} for {len(items)} items of dimension "
                                 f"{self.vectors.shape[1]}")
        start = len(self.items)
        self.items.ids.extend(items.ids)
        self.items.texts.extend(items.texts)
        self.items.titles.extend(items.titles)
        self.items.times = np.concatenate([self.items.times, items.times])
        for k, item in enumerate(items.ids):
            self.items.index[item] = start + k
        self.vectors = np.vstack([self.vectors, vectors])
        self.counts = np.concatenate([self.counts, np.zeros(len(items))])
        if self._index is not None:
            self._index.add(self._tower_vectors()[start:])
        if self._text_index is not None:
            self._text_index.add(self.components["content"].item_space(self.vectors, start))
        return len(items)

    # -- histories -----------------------------------------------------------------------------
    def known_user(self, user: str) -> bool:
        return str(user) in self._user_index

    def user_histories(self, users: list[str], *, now: float | None = None) -> Histories:
        """The training histories of known users (by id).

        Raises:
            UnknownError: a user the training data does not have.
        """
        idx = []
        for u in users:
            k = self._user_index.get(str(u))
            if k is None:
                raise UnknownError(f"unknown user '{str(u)[:60]}': give a history of items or a text of interests "
                                   "for a new user")
            idx.append(k)
        hist = Histories.from_interactions(self.train, np.array(idx, dtype=np.int64)) if idx else \
            Histories([], [], np.zeros(0))
        if now is not None:
            hist.now[:] = now
        return hist

    def session(self, items: list[str] | None = None, text: str | None = None, now: float | None = None) -> Histories:
        """The history of an anonymous session: items liked (oldest first) and/or a text of
        interests. Unknown items are an :class:`UnknownError`."""
        idx = np.array([self.item_index(i) for i in (items or [])], dtype=np.int64)
        moment = now if now is not None else self.latest
        return Histories([idx], [np.ones(len(idx), dtype=bool)], np.array([moment], dtype=np.float64),
                         text=[text.strip() if text and text.strip() else None])

    # -- scoring -------------------------------------------------------------------------------
    def _tower_vectors(self) -> np.ndarray:
        return self.components["tower"].item_vectors(self.vectors)

    def _uses_index(self) -> bool:
        return self.n_items > self.exact_limit and "tower" in self.components

    def reference(self) -> np.ndarray:
        """The items standardisation is measured over: the catalogue the recommender was
        trained on (items added later change no user's standardisation), or a fixed sample
        of ``reference`` of them when it is larger."""
        if self._reference is None:
            if self.trained_on <= self.reference_size:
                self._reference = np.arange(self.trained_on)
            else:
                rng = np.random.default_rng(self.seed)
                self._reference = np.sort(rng.choice(self.trained_on, size=self.reference_size, replace=False))
        return self._reference

    def zscores(self, hist: Histories, columns: np.ndarray | None = None,
                names: list[str] | None = None) -> dict[str, np.ndarray]:
        """Each component's standardised scores ``(len(hist), len(columns))`` (all items when
        ``columns`` is ``None``)."""
        n = self.n_items
        ref = self.reference()
        ctx = self.context()
        if columns is None:
            cols, ref_pos, take = None, ref, None
        else:
            cols = union_sorted(ref, np.asarray(columns, dtype=np.int64))
            ref_pos = np.searchsorted(cols, ref)
            take = np.searchsorted(cols, columns)
        out = {}
        for name in names or list(self.components):
            comp = self.components[name]
            raw = comp.scores(hist, n, ctx) if cols is None else comp.scores_of(hist, n, cols, ctx)
            z = standardise(np.asarray(raw, dtype=np.float32), ref_pos)
            out[name] = z if take is None else z[:, take]
        return out

    def niche(self, hist: Histories) -> np.ndarray:
        """``t(u)``: each history's niche share, standardised with the training users' figures."""
        mean, std = self.hybrid.niche_stats
        return (niche_share(hist, self.counts, self.hybrid.niche_threshold) - mean) / (std if std > 1e-12 else 1.0)

    def combine(self, z: dict[str, np.ndarray], columns: np.ndarray | None = None,
                niche: np.ndarray | None = None) -> np.ndarray:
        """The hybrid's score from standardised component scores (and the users' niche taste)."""
        cols = np.arange(self.n_items) if columns is None else np.asarray(columns, dtype=np.int64)
        buckets = self.hybrid.buckets(self.counts[cols])
        size = next(iter(z.values())).shape[0] if z else 0
        total = np.zeros((size, len(cols)), dtype=np.float32)
        for name, values in z.items():
            w = np.asarray(self.hybrid.weights.get(name, [0.0] * (len(self.hybrid.edges) + 1)), dtype=np.float32)
            if np.any(w):
                total += w[buckets][None, :] * values
        total += np.asarray(self.hybrid.bias, dtype=np.float32)[buckets][None, :]
        if niche is not None and self.hybrid.niche is not None and np.any(self.hybrid.niche):
            total += np.asarray(self.hybrid.niche, dtype=np.float32)[buckets][None, :] * \
                niche.astype(np.float32)[:, None]
        return total

    def score(self, hist: Histories, columns: np.ndarray | None = None) -> np.ndarray:
        """The hybrid's scores ``(len(hist), len(columns))`` (all items when ``columns`` is ``None``)."""
        used = [name for name in self.components if np.any(self.hybrid.weights.get(name, [0.0]))]
        if not used:
            used = list(self.components)[:1]
        return self.combine(self.zscores(hist, columns, used), columns, self.niche(hist))

    def _content_ranks_new_items(self) -> bool:
        """Whether the plain text similarity weighs items without history (then the index is
        searched with its query too, not only the tower's)."""
        w = self.hybrid.weights.get("content")
        return "content" in self.components and bool(w) and w[0] != 0

    def _candidates(self, hist: Histories, k: int) -> np.ndarray | None:
        """Through the approximate index: items anyone interacted with plus the index's best
        text matches, by the tower's vectors and, where the hybrid weighs it for items without
        history, by the content component's (``None``: score the whole catalogue)."""
        if not self._uses_index():
            return None
        from .index import build_index

        if self._index is None:
            self._index = build_index(self._tower_vectors(), **self.index_settings)
        tower = self.components["tower"]
        U = tower.user_vectors(hist, self.vectors, self.encode)
        wanted = max(4 * k, k + 200)
        found = [self._index.search(U, wanted)]
        if self._content_ranks_new_items():
            content = self.components["content"]
            if self._text_index is None:
                self._text_index = build_index(content.item_space(self.vectors), **self.index_settings)
            found.append(self._text_index.search(content.user_vectors(hist, self.vectors, self.encode), wanted))
        if self._warm is None:  # always scored exactly: items with history and the standardisation's reference
            self._warm = union_sorted(self.reference(), np.flatnonzero(self.counts > 0))
        found = np.concatenate([f.ravel() for f in found])
        return union_sorted(self._warm, found[found >= 0])

    # -- recommending --------------------------------------------------------------------------
    def recommend(self, hist: Histories, k: int = 10, *, exclude_seen: bool = True,
                  include: list[str] | None = None, exclude: list[str] | None = None,
                  reasons: bool = True) -> list[list[dict]]:
        """The ``k`` best items per history, best first, each ``{"item", "score", "title",
        "because"}`` (``because``: the liked item that contributed most, or ``None``).

        Filters: ``exclude_seen`` (every item in the history), ``include`` (only these
        items), ``exclude`` (never these)."""
        check_k(k)
        out = []
        include_idx = np.array(sorted({self.item_index(i) for i in include}), dtype=np.int64) if include else None
        exclude_idx = np.array([self.item_index(i) for i in exclude or []], dtype=np.int64)
        for start in range(0, len(hist), 256):
            part = Histories(hist.items[start:start + 256], hist.positive[start:start + 256],
                             hist.now[start:start + 256], hist.text[start:start + 256] if hist.text else None,
                             hist.times[start:start + 256] if hist.times else None)
            columns = include_idx if include_idx is not None else self._candidates(part, k)
            scores = self.score(part, columns)
            cols = np.arange(self.n_items) if columns is None else columns  # sorted
            slots = self.hybrid.cold_slots(k)
            cold = self.counts[cols] < self.hybrid.cold_threshold if slots else None
            for r in range(len(part)):
                row = scores[r]
                blocked = np.concatenate([exclude_idx, part.items[r]]) if exclude_seen else exclude_idx
                if len(blocked):
                    if columns is None:
                        row[blocked] = -np.inf
                    else:
                        at = np.searchsorted(cols, blocked).clip(0, len(cols) - 1)
                        row[at[cols[at] == blocked]] = -np.inf
                top = top_k(row, k, cold, slots)
                picked = cols[top]
                because = self.reasons(part, r, picked) if reasons else [None] * len(picked)
                out.append([{"item": self.items.ids[j], "score": round(float(row[t]), 4),
                             "title": self.items.titles[j], "because": b}
                            for t, j, b in zip(top, picked, because)])
        return out

    def reasons(self, hist: Histories, row: int, picked: np.ndarray) -> list[dict | None]:
        """For each picked item, the liked history item that contributed most: its weight in
        the item-item model where it has one, else the closest text."""
        items, pos = hist.items[row], hist.positive[row]
        liked = items[pos][-200:]
        if not len(liked):
            return [None] * len(picked)
        ease = self.components.get("ease")
        weights = recency_weights(len(liked), getattr(ease, "decay", 1.0))
        parts = ease.contributions(liked, weights, np.asarray(picked)) if hasattr(ease, "contributions") else None
        sims = self.vectors[liked] @ self.vectors[np.asarray(picked, dtype=np.int64)].T
        out = []
        for t in range(len(picked)):
            best = -1
            if parts is not None and parts[:, t].max() > 0:
                best = int(parts[:, t].argmax())
            elif sims[:, t].max() > 0:
                best = int(sims[:, t].argmax())
            if best < 0:
                out.append(None)
            else:
                item = int(liked[best])
                out.append({"item": self.items.ids[item], "title": self.items.titles[item]})
        return out

    def similar(self, item: str, k: int = 10) -> list[dict]:
        """Items like ``item``: the hybrid's ranking for a history of that one item."""
        hist = self.session([item])
        return [{k_: v for k_, v in r.items() if k_ != "because"} for r in self.recommend(hist, k, reasons=False)[0]]


def check_k(k: Any) -> int:
    """``k`` as an int in 1..MAX_K, or a clear error."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise DomainfitError(f"k must be a whole number, not {k!r}")
    if k < 1 or k > MAX_K:
        raise DomainfitError(f"k must be between 1 and {MAX_K}, not {k}")
    return int(k)


def embed_items(texts: list[str], encode, dim: int) -> np.ndarray:
    """Text vectors for items; an item without text gets a zero vector (no text to match)."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    have = [k for k, t in enumerate(texts) if t]
    if have:
        out[have] = encode([texts[k] for k in have])
    return out
