"""Out-of-scope detection for a classifier: is this text one of the classes at all?

A classifier always answers with one of its labels, also for a text that belongs to none
of them. A detector gives every text an *out-of-scope score* (higher: less like the
training data) from the classifier's own pooled vectors and logits
(:meth:`domainfit.inference.Predictor.features`):

* ``max-softmax`` — ``1 - max probability`` (the usual baseline; Hendrycks & Gimpel 2017);
* ``energy`` — ``-logsumexp(logits)`` (Liu et al. 2020);
* ``mahalanobis`` — the smallest Mahalanobis distance of the pooled vector to a class
  mean, with one shared covariance (Ledoit–Wolf shrinkage) fitted on the training texts
  (Lee et al. 2018; Podolskiy et al. 2021 for transformer intent classifiers);
* ``knn`` — one minus the cosine similarity to the k-th nearest training text (Sun et al. 2022).

:func:`calibrate` picks the threshold on validation data by the rule an operator sets: by
default the strictest one that costs at most 1 point of in-scope accuracy
(``max_accuracy_loss``), or a share of texts left unanswered (``fallback_rate``), or the
loosest one whose answered texts are right at least ``target_precision`` of the time.
:func:`budgets` shows what a few budgets would give; :func:`tradeoff` gives the whole curve
(in-scope accuracy against out-of-scope recall).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .core.errors import DomainfitError
from .core.io import staged_folder

__all__ = ["METHODS", "DEFAULT_ACCURACY_LOSS", "OutOfScopeDetector", "Calibration", "calibrate", "budgets",
           "tradeoff", "auroc"]

METHODS = ("max-softmax", "energy", "mahalanobis", "knn")


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def _normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@dataclass
class OutOfScopeDetector:
    """Scores texts by how unlike the training classes they are (see the module doc).

    Fit with :meth:`fit` on the training texts' features, score with :meth:`score`, store
    with :meth:`save` (safetensors + JSON, no pickle) and :meth:`load`.
    """

    method: str = "max-softmax"
    k: int = 10
    means: np.ndarray | None = None       # (classes, hidden)
    whitening: np.ndarray | None = None   # (hidden, hidden): precision = W Wᵀ
    bank: np.ndarray | None = None        # (n, hidden) normalised training vectors for knn
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.method not in METHODS:
            raise DomainfitError(f"unknown out-of-scope method {self.method!r}; choose one of {', '.join(METHODS)}.")

    @classmethod
    def fit(cls, method: str, features: np.ndarray, labels: np.ndarray, num_classes: int, *, k: int = 10,
            max_bank: int = 50_000, seed: int = 0) -> OutOfScopeDetector:
        """Fit on training vectors ``(n, hidden)`` and their class indices ``(n,)``; rows with
        a negative index (e.g. the company's own out-of-scope examples) are left out."""
        det = cls(method, k=k)
        keep = labels >= 0
        x, y = np.asarray(features, np.float64)[keep], np.asarray(labels)[keep]
        if method == "mahalanobis":
            from sklearn.covariance import LedoitWolf

            present = np.unique(y)
            means = np.zeros((num_classes, x.shape[1]))
            for c in present:
                means[c] = x[y == c].mean(0)
            centred = x - means[y]
            precision = LedoitWolf(assume_centered=True).fit(centred).precision_
            det.means = means[present].astype(np.float32)
            det.whitening = np.linalg.cholesky((precision + precision.T) / 2).astype(np.float32)
            det.info = {"classes": int(len(present)), "train_texts": int(len(x))}
        elif method == "knn":
            bank = _normalize(x).astype(np.float32)
            if len(bank) > max_bank:
                bank = bank[np.random.default_rng(seed).choice(len(bank), max_bank, replace=False)]
            det.bank = bank
            det.k = max(1, min(k, len(bank)))
            det.info = {"train_texts": int(len(bank))}
        return det

    def score(self, features: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """Out-of-scope score per text (higher: more likely out of scope), shape ``(n,)``."""
        if len(logits) == 0:
            return np.zeros(0, np.float32)
        if self.method == "max-softmax":
            return 1.0 - _softmax(np.asarray(logits, np.float64)).max(1)
        if self.method == "energy":
            z = np.asarray(logits, np.float64)
            top = z.max(1)
            return -(top + np.log(np.exp(z - top[:, None]).sum(1)))
        if self.method == "mahalanobis":
            z = np.asarray(features, np.float32) @ self.whitening
            m = self.means @ self.whitening
            d = (z ** 2).sum(1)[:, None] - 2 * z @ m.T + (m ** 2).sum(1)[None, :]
            return d.min(1).astype(np.float64)
        sims = _normalize(np.asarray(features, np.float32)) @ self.bank.T
        kth = np.partition(-sims, self.k - 1, axis=1)[:, self.k - 1]
        return (1.0 + kth).astype(np.float64)  # 1 - similarity of the k-th nearest

    def save(self, folder: str | Path) -> None:
        from safetensors.numpy import save_file

        arrays = {name: getattr(self, name) for name in ("means", "whitening", "bank")
                  if getattr(self, name) is not None}
        with staged_folder(folder) as staging:
            if arrays:
                save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(staging / "ood.safetensors"))
            (staging / "ood.json").write_text(json.dumps({"method": self.method, "k": self.k, "info": self.info},
                                                         indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: str | Path) -> OutOfScopeDetector:
        from safetensors.numpy import load_file

        folder = Path(folder)
        meta = json.loads((folder / "ood.json").read_text(encoding="utf-8"))
        arrays = load_file(str(folder / "ood.safetensors")) if (folder / "ood.safetensors").is_file() else {}
        return cls(meta["method"], k=meta.get("k", 10), info=meta.get("info", {}), **arrays)


@dataclass
class Calibration:
    """A threshold and what it gave on the validation data."""

    threshold: float
    rule: str
    in_scope_accuracy: float
    answered_precision: float
    answered_share: float
    validation_texts: int
    oos_recall: float | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


DEFAULT_ACCURACY_LOSS = 0.01


def calibrate(scores: np.ndarray, correct: np.ndarray, in_scope: np.ndarray | None = None, *,
              target_precision: float | None = None, max_accuracy_loss: float | None = None,
              fallback_rate: float | None = None) -> Calibration:
    """Choose the out-of-scope threshold (answer when ``score <= threshold``) by one rule:

    Args:
        scores: validation out-of-scope scores.
        correct: whether the classifier's label is right (always False for an
            out-of-scope text).
        in_scope: which texts are in scope (default: all).
        max_accuracy_loss: the strictest threshold that lowers in-scope accuracy (an
            unanswered in-scope text counts as wrong) by at most this much: an operator's
            accuracy budget. The default rule, with :data:`DEFAULT_ACCURACY_LOSS` (1 point).
        fallback_rate: the strictest threshold that leaves at most this share of the
            validation texts unanswered.
        target_precision: the loosest threshold whose answered texts are right at least
            this often (rejecting nothing if the classifier already is, which is why it
            catches few out-of-scope texts with an accurate classifier).
    """
    given = [name for name, v in (("target_precision", target_precision), ("max_accuracy_loss", max_accuracy_loss),
                                  ("fallback_rate", fallback_rate)) if v is not None]
    if len(given) > 1:
        raise DomainfitError(f"calibrate by one rule; got {' and '.join(given)}.")
    if not given:
        max_accuracy_loss = DEFAULT_ACCURACY_LOSS
    scores = np.asarray(scores, np.float64)
    correct = np.asarray(correct, bool)
    in_scope = np.ones(len(scores), bool) if in_scope is None else np.asarray(in_scope, bool)
    if not len(scores) or not in_scope.any():
        raise DomainfitError("calibration needs validation texts that are in scope.")
    order = np.argsort(scores, kind="stable")
    s, c, ins = scores[order], correct[order], in_scope[order]
    answered = np.arange(1, len(s) + 1)
    precision = np.cumsum(c) / answered
    accuracy = np.cumsum(c & ins) / ins.sum()
    last = np.r_[s[1:] != s[:-1], True]  # cut only between different scores
    if max_accuracy_loss is not None:
        full = accuracy[-1]
        ok = np.nonzero(last & (accuracy >= full - max_accuracy_loss - 1e-12))[0]
        cut, rule = int(ok[0]), f"in-scope accuracy loss <= {max_accuracy_loss:g}"
    elif fallback_rate is not None:
        ok = np.nonzero(last & (answered >= (1 - fallback_rate) * len(s) - 1e-9))[0]
        cut, rule = int(ok[0]), f"fallback rate <= {fallback_rate:g}"
    else:
        ok = np.nonzero(last & (precision >= target_precision))[0]
        cut = int(ok[-1]) if len(ok) else int(np.nonzero(last)[0][np.argmax(precision[last])])
        rule = f"answered precision >= {target_precision:g}" + ("" if len(ok) else " (not reachable: best precision)")
    oos = ~ins
    recall = float((s[cut + 1:][oos[cut + 1:]]).size / oos.sum()) if oos.any() else None
    return Calibration(float(s[cut]), rule, float(accuracy[cut]), float(precision[cut]), float(answered[cut] / len(s)),
                       int(len(s)), recall)


def budgets(scores: np.ndarray, correct: np.ndarray, in_scope: np.ndarray,
            losses: tuple[float, ...] = (0.005, 0.01, 0.02, 0.05)) -> list[dict]:
    """What each in-scope accuracy budget gives on the validation data (the trade-off an
    operator chooses from): threshold, in-scope accuracy, share of texts unanswered, and the
    out-of-scope recall where the validation data has out-of-scope texts."""
    rows = []
    for loss in losses:
        cal = calibrate(scores, correct, in_scope, max_accuracy_loss=loss)
        rows.append({"max_accuracy_loss": loss, "threshold": cal.threshold, "in_scope_accuracy": cal.in_scope_accuracy,
                     "fallback_share": 1 - cal.answered_share, "oos_recall": cal.oos_recall})
    return rows


def tradeoff(scores: np.ndarray, correct: np.ndarray, in_scope: np.ndarray, points: int = 101) -> list[dict]:
    """In-scope accuracy against out-of-scope recall over thresholds (quantiles of the scores)."""
    scores = np.asarray(scores, np.float64)
    correct, in_scope = np.asarray(correct, bool), np.asarray(in_scope, bool)
    out = []
    for q in np.linspace(0, 1, points):
        t = float(np.quantile(scores, q))
        answer = scores <= t
        out.append({"threshold": t,
                    "in_scope_accuracy": float((answer & correct & in_scope).sum() / max(in_scope.sum(), 1)),
                    "oos_recall": float((~answer & ~in_scope).sum() / max((~in_scope).sum(), 1)),
                    "oos_precision": float((~answer & ~in_scope).sum() / max((~answer).sum(), 1))})
    return out


def auroc(scores: np.ndarray, in_scope: np.ndarray) -> float:
    """Area under the ROC curve of the score as an out-of-scope detector."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(~np.asarray(in_scope, bool), np.asarray(scores, np.float64)))
