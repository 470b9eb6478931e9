"""The text tower: two small networks over the frozen encoder's vectors, trained on the
interactions to put a user's history near the next item they liked.

* item side: ``v = normalise(e + f_item(e))`` for the item's text vector ``e`` (any item with
  text, including ones added after training: no retraining);
* user side: a learned weighting of the last ``history`` liked items' text vectors by recency
  (plus a text of interests for anonymous sessions, as the most recent item), then
  ``u = normalise(x + f_user(x))``;
* score ``exp(τ)·u·v + b[age]``: ``age`` is the item's age at the moment recommended for,
  in buckets from a week to forty years (an unknown age has its own bucket), so the tower
  learns how much newness matters in this catalogue.

Trained with a sampled softmax: each (history → next liked item) pair against the batch's
other targets and as many uniformly drawn items (the uniform ones stop the tower from only
learning popularity, which the collaborative parts already know).
"""

from __future__ import annotations

import numpy as np

from ...core.errors import ConfigError
from ...core.ui import say
from .base import Component, FitData, dot_rows
from .history import Histories

__all__ = ["TextTower", "age_buckets", "AGE_EDGES_DAYS"]

AGE_EDGES_DAYS = np.array([0, 7, 30, 90, 180, 365, 730, 1095, 1826, 3652, 7305, 14610], dtype=np.float64)
N_AGE = len(AGE_EDGES_DAYS) + 2  # + "after the moment" (negative age) and "unknown"


def age_buckets(now: np.ndarray, item_times: np.ndarray) -> np.ndarray:
    """``(len(now), len(item_times))`` bucket of each item's age in days at each moment."""
    age = (np.asarray(now, dtype=np.float64)[:, None] - np.asarray(item_times, dtype=np.float64)[None, :]) / 86400.0
    buckets = np.searchsorted(AGE_EDGES_DAYS, age, side="right")  # age < 0 → 0
    return np.where(np.isnan(age), N_AGE - 1, buckets).astype(np.int64)


def _torch():
    import torch

    return torch


def _net(dim: int, hidden: int):
    torch = _torch()
    return torch.nn.Sequential(torch.nn.Linear(dim, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, dim))


class TextTower(Component):
    name = "tower"

    def __init__(self, hidden: int = 256, history: int = 20, epochs: int = 5, batch_size: int = 512,
                 lr: float = 2e-3, seed: int = 0, dim: int | None = None):
        if history < 1 or epochs < 0 or batch_size < 2:
            raise ConfigError("tower: history ≥ 1, epochs ≥ 0 and batch_size ≥ 2")
        self.hidden, self.history, self.epochs = int(hidden), int(history), int(epochs)
        self.batch_size, self.lr, self.seed, self.dim = int(batch_size), float(lr), int(seed), dim
        self.module = None
        self._item_cache: tuple[int, np.ndarray] | None = None

    def config(self):
        return {"hidden": self.hidden, "history": self.history, "epochs": self.epochs,
                "batch_size": self.batch_size, "lr": self.lr, "seed": self.seed, "dim": self.dim}

    def _build(self, dim: int):
        torch = _torch()
        self.dim = dim
        torch.manual_seed(self.seed)
        m = torch.nn.Module()
        m.position = torch.nn.Parameter(torch.zeros(self.history))
        m.user = _net(dim, self.hidden)
        m.item = _net(dim, self.hidden)
        m.log_scale = torch.nn.Parameter(torch.tensor(3.0))
        m.age = torch.nn.Parameter(torch.zeros(N_AGE))
        self.module = m
        self._np = None
        return m

    # -- the two sides -------------------------------------------------------------------------
    def _users(self, H, extra=None):
        """User vectors from ``H`` (batch, history) item-vector rows (zero rows: padding)."""
        torch = _torch()
        m = self.module
        present = H.abs().sum(-1) > 0
        weights = m.position.expand(present.shape).masked_fill(~present, -1e9)
        weights = torch.softmax(weights, dim=1) * present.any(1, keepdim=True)
        x = (weights.unsqueeze(-1) * H).sum(1)
        return torch.nn.functional.normalize(x + m.user(x), dim=-1)

    def _items(self, E):
        torch = _torch()
        return torch.nn.functional.normalize(E + self.module.item(E), dim=-1)

    def _history_block(self, hist: Histories, E: np.ndarray, encode=None) -> np.ndarray:
        """``(users, history, dim)``: the last liked items' vectors (text of interests last)."""
        L = self.history
        block = np.zeros((len(hist), L, E.shape[1]), dtype=np.float32)
        for k, (items, pos) in enumerate(zip(hist.items, hist.positive)):
            liked = items[pos]
            text = hist.text[k] if hist.text is not None else None
            take = L - 1 if text else L
            liked = liked[-take:] if take else liked[:0]
            vectors = [E[liked]] if len(liked) else []
            if text and encode is not None:
                vectors.append(encode([text]))
            if vectors:
                stacked = np.concatenate(vectors)[-L:]
                block[k, L - len(stacked):] = stacked
        return block

    def item_vectors(self, E: np.ndarray) -> np.ndarray:
        """The tower's item vectors for text vectors ``E`` (cached; items appended to the
        catalogue since are computed alone). The cache is cleared when the tower is refitted."""
        done = np.zeros((0, self.dim), dtype=np.float32)
        if self._item_cache is not None and self._item_cache[0] <= len(E):
            if self._item_cache[0] == len(E):
                return self._item_cache[1]
            done = self._item_cache[1]  # the catalogue grew: only the new items are computed
        torch = _torch()
        with torch.no_grad():
            parts = [self._items(torch.from_numpy(np.ascontiguousarray(E[s:s + 65536]))).numpy()
                     for s in range(len(done), len(E), 65536)]
        out = np.concatenate([done, *parts]) if parts else done
        self._item_cache = (len(E), out)
        return out

    def _numpy(self) -> dict:
        """The trained weights as numpy arrays: answering one request in numpy avoids torch's
        per-call overhead (a few milliseconds for a tiny network)."""
        if getattr(self, "_np", None) is None:
            state = {k: v.detach().numpy().astype(np.float32) for k, v in self.module.state_dict().items()}
            self._np = state
        return self._np

    @staticmethod
    def _mlp(x: np.ndarray, w: dict, side: str) -> np.ndarray:
        from scipy.special import erf

        h = x @ w[f"{side}.0.weight"].T + w[f"{side}.0.bias"]
        h = 0.5 * h * (1.0 + erf(h / np.sqrt(2.0)))  # exact GELU, as torch's default
        return h @ w[f"{side}.2.weight"].T + w[f"{side}.2.bias"]

    def user_vectors(self, hist: Histories, E: np.ndarray, encode=None) -> np.ndarray:
        w = self._numpy()
        H = self._history_block(hist, E, encode)
        present = np.abs(H).sum(-1) > 0
        logits = np.where(present, w["position"][None, :], -1e9)
        logits -= logits.max(1, keepdims=True)
        weights = np.exp(logits) * present
        weights /= np.maximum(weights.sum(1, keepdims=True), 1e-12)
        x = (weights[..., None] * H).sum(1).astype(np.float32)
        out = x + self._mlp(x, w, "user")
        return (out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    @property
    def scale(self) -> float:
        return float(np.exp(self._numpy()["log_scale"]))

    @property
    def age_bias(self) -> np.ndarray:
        return self._numpy()["age"]

    def scores(self, hist, n_items, context=None):
        return self.scores_of(hist, n_items, None, context)

    def scores_of(self, hist, n_items, columns, context=None):
        E = context.item_vectors[:n_items]
        U = self.user_vectors(hist, E, context.encode)
        V = self.item_vectors(context.item_vectors)[:n_items]
        times = context.item_times[:n_items]
        if columns is not None:
            times = times[columns]
        out = self.scale * dot_rows(U, V, columns)
        out += self.age_bias[age_buckets(hist.now, times)]
        return out.astype(np.float32, copy=False)

    # -- training ------------------------------------------------------------------------------
    def _pairs(self, hist: Histories):
        """``(user, position in the liked sequence, target item, moment)`` for every liked
        item after a user's first."""
        users, ends, targets, moments = [], [], [], []
        for k, (items, pos) in enumerate(zip(hist.items, hist.positive)):
            liked = np.flatnonzero(pos)
            times = hist.times[k] if hist.times is not None else np.full(len(items), np.nan)
            for j in range(1, len(liked)):
                users.append(k)
                ends.append(j)
                targets.append(items[liked[j]])
                moments.append(times[liked[j - 1]])
        return (np.array(users, dtype=np.int64), np.array(ends, dtype=np.int64), np.array(targets, dtype=np.int64),
                np.array(moments, dtype=np.float64))

    def fit(self, data: FitData) -> "TextTower":
        torch = _torch()
        if data.item_vectors is None:
            raise ConfigError("the tower needs the items' text vectors")
        E = np.ascontiguousarray(data.item_vectors, dtype=np.float32)
        n_items, dim = E.shape
        m = self._build(dim)
        self._item_cache = None
        users, ends, targets, moments = self._pairs(data.histories)
        if not len(targets) or self.epochs == 0:
            return self
        # The padded liked-item sequences, one row per user: a pair's history is a slice of it.
        liked = [items[pos] for items, pos in zip(data.histories.items, data.histories.positive)]
        width = max(len(s) for s in liked)
        seq = np.full((len(liked), width + self.history), -1, dtype=np.int64)
        for k, s in enumerate(liked):
            seq[k, self.history:self.history + len(s)] = s
        item_times = np.asarray(data.item_times if data.item_times is not None else np.full(n_items, np.nan))
        Et = torch.from_numpy(np.vstack([E, np.zeros((1, dim), dtype=np.float32)]))  # row -1: padding
        opt = torch.optim.AdamW(m.parameters(), lr=self.lr, weight_decay=1e-4)
        gen = torch.Generator().manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        offsets = np.arange(self.history)
        steps = max(1, int(np.ceil(len(targets) / self.batch_size)))
        say(f"  tower: {len(targets):,} (history → next liked item) pairs, {self.epochs} epochs")
        for epoch in range(self.epochs):
            order = torch.randperm(len(targets), generator=gen).numpy()
            total = 0.0
            for b in range(steps):
                rows = order[b * self.batch_size:(b + 1) * self.batch_size]
                # history = the `history` liked items before the target (padding is -1 → zero row)
                window = seq[users[rows][:, None], ends[rows][:, None] + offsets[None, :]]
                H = Et[torch.from_numpy(window)]
                y = targets[rows]
                negatives = rng.integers(0, n_items, size=len(rows))
                candidates = np.concatenate([y, negatives])
                u = self._users(H)
                v = self._items(Et[torch.from_numpy(candidates)])
                logits = m.log_scale.exp() * (u @ v.T)
                buckets = age_buckets(moments[rows], item_times[candidates])
                logits = logits + m.age[torch.from_numpy(buckets)]
                clash = torch.from_numpy(y[:, None] == candidates[None, :])
                clash[torch.arange(len(rows)), torch.arange(len(rows))] = False  # a repeated target is no negative
                logits = logits.masked_fill(clash, -1e9)
                loss = torch.nn.functional.cross_entropy(logits, torch.arange(len(rows)))
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach())
            say(f"  tower: epoch {epoch + 1}/{self.epochs}, loss {total / steps:.3f}")
        m.eval()
        self._np = None
        return self

    def arrays(self):
        return {k: v.detach().numpy() for k, v in self.module.state_dict().items()}

    def set_arrays(self, arrays):
        torch = _torch()
        m = self._build(int(self.dim or arrays["item.0.weight"].shape[1]))
        m.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in arrays.items()})
        m.eval()
