"""Single-label classification: softmax over the label list."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..core.errors import DataError, Problem
from .base import Task


def soft_targets(examples: list, labels: list[str]) -> torch.Tensor:
    """A probability row per example: its ``soft`` probabilities where it has them, else all
    on its label (a label unseen in training: a row of zeros, which teaches nothing)."""
    index = {name: i for i, name in enumerate(labels)}
    out = torch.zeros(len(examples), len(labels))
    for n, e in enumerate(examples):
        if e.soft is not None:
            out[n] = torch.tensor(e.soft, dtype=torch.float32)
        elif str(e.label) in index:
            out[n, index[str(e.label)]] = 1.0
    return out


class ClassificationTask(Task):
    name = "classification"
    primary_metric = "accuracy"
    stratify = True
    text_classes = True
    metrics_read_probabilities = True
    ngram_companion = True
    soft_targets = True

    def label_list(self, targets: list[Any]) -> list[str]:
        return sorted({str(t) for t in targets})

    def check_label_set(self, labels, source, column):
        if len(labels) < 2:
            reason = "the training data has only one class after the split; at least 2 are needed"
            raise DataError([Problem(source, None, column, reason)])

    def num_outputs(self, labels: list[str]) -> int:
        return len(labels)

    def encode(self, targets: list[Any], labels: list[str]) -> torch.Tensor:
        index = {name: i for i, name in enumerate(labels)}
        # Labels unseen in training map to -100: ignored by the loss, always wrong in metrics.
        return torch.tensor([index.get(str(t), -100) for t in targets], dtype=torch.long)

    def encode_examples(self, tokenizer, examples, labels, max_length):
        enc = super().encode_examples(tokenizer, examples, labels, max_length)
        if any(e.soft is not None for e in examples):  # probability targets, one row per example
            enc.targets = soft_targets(examples, labels)
        return enc

    def loss(self, logits, targets, label_smoothing=0.0):
        if targets.is_floating_point():  # a probability per label (distillation, outlier exposure)
            return F.cross_entropy(logits.float(), targets, label_smoothing=label_smoothing)
        return F.cross_entropy(logits.float(), targets, label_smoothing=label_smoothing, ignore_index=-100)

    def probabilities(self, logits):
        return logits.float().softmax(-1)

    def decode(self, scores, labels, top_k=3):
        k = min(top_k, len(labels))
        values, indices = scores.topk(k, dim=-1)
        out = []
        for vals, idx in zip(values.tolist(), indices.tolist()):
            ranked = [{"label": labels[i], "score": round(v, 6)} for v, i in zip(vals, idx)]
            out.append({"label": ranked[0]["label"], "score": ranked[0]["score"], "top_k": ranked})
        return out

    def quick_score(self, logits, targets):
        if targets.is_floating_point():
            targets = targets.argmax(-1)
        return float((logits.argmax(-1) == targets).float().mean())

    def metrics(self, targets, predictions, scores, labels):
        from ..evaluation import classification_metrics

        y_pred = [p["label"] for p in predictions]
        return classification_metrics([str(t) for t in targets], y_pred, scores, labels)

    def report_data(self, examples, scored, labels):
        return self.report_fields(examples, [e.label for e in examples], [p["label"] for p in scored.predictions],
                                  probs=scored.scores.numpy(), labels=labels)
