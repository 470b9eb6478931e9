"""Sentence pairs scored together by one encoder (a cross-encoder).

The two texts go into the encoder as one input (``[CLS] a [SEP] b [SEP]``), so every word
of one can attend to every word of the other: slower than comparing two embeddings, and
more accurate, which is why a cross-encoder reranks the top results of a bi-encoder.

What the labels are decides the flavour (``variant``, stored in the manifest):

* class names (``entailment``, ``duplicate``...) → ``classification``: softmax over them;
* numbers all within [0, 1] (relevance 0/1, or a normalised similarity) → ``probability``:
  one logit, binary cross-entropy, the score is a sigmoid probability;
* other numbers (a 0–5 similarity) → ``score``: one output at the targets' scale, MSE.

Numbers are always read as scores: a file whose classes are written ``0``/``1``/``2``
trains a scorer; name the classes to train a classifier.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .base import Task
from .classification import ClassificationTask
from .regression import RegressionTask

__all__ = ["PairClassificationTask", "PairProbabilityTask", "PairScoreTask", "pair_variant", "positive_label_index"]

_POSITIVE = ("1", "true", "yes", "relevant", "positive", "entailment", "duplicate", "match", "similar")


def pair_variant(targets: list) -> str:
    """``classification``, ``probability`` or ``score`` from the training labels."""
    numbers = []
    for target in targets:
        try:
            value = float(target)
        except (TypeError, ValueError):
            return "classification"
        if not math.isfinite(value):
            return "classification"
        numbers.append(value)
    return "probability" if all(0.0 <= v <= 1.0 for v in numbers) else "score"


def positive_label_index(labels: list[str]) -> int:
    """The class whose probability ranks pairs (for reranking): a label that means
    "relevant" (``1``, ``yes``, ``relevant``, ``positive``...), else the last label."""
    lowered = [label.lower() for label in labels]
    for name in _POSITIVE:
        if name in lowered:
            return lowered.index(name)
    return len(labels) - 1


def _ranks(x: torch.Tensor) -> torch.Tensor:
    order = x.argsort()
    ranks = torch.empty_like(x)
    ranks[order] = torch.arange(len(x), dtype=x.dtype)
    return ranks


def _spearman(pred: torch.Tensor, targets: torch.Tensor) -> float:
    """Spearman correlation (ties broken by position: fast, for early stopping only)."""
    if len(pred) < 2:
        return 0.0
    a, b = _ranks(pred.float()), _ranks(targets.float())
    a, b = a - a.mean(), b - b.mean()
    denominator = (a.norm() * b.norm()).clamp_min(1e-12)
    return float((a * b).sum() / denominator)


def _relevance(self, scores, labels):
    """One relevance score per pair: the probability of the positive class for a pair
    classifier (see :func:`positive_label_index`), else the predicted score."""
    if scores.ndim == 2:
        scores = scores[:, positive_label_index(labels)]
    return scores.tolist()


def _for_targets(self, targets):
    """The flavour the training labels ask for (see :func:`pair_variant`)."""
    return PAIR_VARIANTS[pair_variant(targets)]


class PairClassificationTask(ClassificationTask):
    name = "pair"
    variant = "classification"
    report_as = "classification"
    needs_pair = True
    text_classes = False  # classes of a pair, not of one text
    ngram_companion = False
    soft_targets = False
    relevance = _relevance
    for_targets = _for_targets

    def check_label_set(self, labels, source, column):
        """A pair classifier is not refused for its label count."""


class PairScoreTask(RegressionTask):
    """Numeric similarity scores at any scale."""

    name = "pair"
    variant = "score"
    report_as = "regression"
    primary_metric = "spearman"
    affine_output = True
    needs_pair = True
    relevance = _relevance
    for_targets = _for_targets

    def quick_score(self, logits, targets):
        return _spearman(logits.float().squeeze(-1), targets)

    def metrics(self, targets, predictions, scores, labels):
        metrics = super().metrics(targets, predictions, scores, labels)
        metrics["primary_metric"] = "spearman"
        return metrics


class PairProbabilityTask(Task):
    """Scores in [0, 1] (e.g. relevance 0/1): binary cross-entropy on one logit."""

    name = "pair"
    variant = "probability"
    report_as = "regression"
    primary_metric = "spearman"
    needs_pair = True
    relevance = _relevance
    for_targets = _for_targets

    def num_outputs(self, labels):
        return 1

    def encode(self, targets, labels):
        return torch.tensor([float(t) for t in targets], dtype=torch.float32)

    def loss(self, logits, targets, label_smoothing=0.0):
        return F.binary_cross_entropy_with_logits(logits.float().squeeze(-1), targets.float())

    def probabilities(self, logits):
        return logits.float().squeeze(-1).sigmoid()

    def decode(self, scores, labels, top_k=3):
        return [{"label": round(v, 6), "score": round(v, 6)} for v in scores.tolist()]

    def quick_score(self, logits, targets):
        return _spearman(logits.float().squeeze(-1), targets)

    def metrics(self, targets, predictions, scores, labels):
        from sklearn.metrics import roc_auc_score

        from ..evaluation import regression_metrics

        gold = [float(t) for t in targets]
        pred = [float(p["score"]) for p in predictions]
        metrics = regression_metrics(gold, pred)
        metrics["primary_metric"] = "spearman"
        if set(gold) <= {0.0, 1.0}:
            metrics["accuracy"] = sum((p >= 0.5) == (g == 1.0) for p, g in zip(pred, gold)) / len(gold)
            metrics["roc_auc"] = float(roc_auc_score(gold, pred)) if len(set(gold)) == 2 else None
        return metrics


PAIR_VARIANTS: dict[str, Task] = {
    "classification": PairClassificationTask(),
    "probability": PairProbabilityTask(),
    "score": PairScoreTask(),
}
