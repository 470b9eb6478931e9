"""Single-label classification: softmax over the label list."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..core.errors import DataError, Problem
from .base import Task


class ClassificationTask(Task):
    name = "classification"
    primary_metric = "accuracy"
    stratify = True
    text_classes = True
    metrics_read_probabilities = True
    ngram_companion = True

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

    def loss(self, logits, targets, label_smoothing=0.0):
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
        return float((logits.argmax(-1) == targets).float().mean())

    def metrics(self, targets, predictions, scores, labels):
        from ..evaluation import classification_metrics

        y_pred = [p["label"] for p in predictions]
        return classification_metrics([str(t) for t in targets], y_pred, scores, labels)

    def report_data(self, examples, scored, labels):
        return self.report_fields(examples, [e.label for e in examples], [p["label"] for p in scored.predictions],
                                  probs=scored.scores.numpy(), labels=labels)
