"""Multi-label classification: one sigmoid per label, threshold 0.5."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..core.errors import DataError, Problem
from .base import Task

THRESHOLD = 0.5


class MultiLabelTask(Task):
    name = "multilabel"
    primary_metric = "micro_f1"
    text_classes = True
    multi_label = True
    metrics_read_probabilities = True

    def label_list(self, targets: list[Any]) -> list[str]:
        return sorted({str(t) for ts in targets for t in ts})

    def check_label_set(self, labels, source, column):
        if len(labels) < 2:
            reason = "the training data has only one class after the split; at least 2 are needed"
            raise DataError([Problem(source, None, column, reason)])

    def num_outputs(self, labels: list[str]) -> int:
        return len(labels)

    def encode(self, targets, labels):
        index = {name: i for i, name in enumerate(labels)}
        out = torch.zeros(len(targets), len(labels))
        for row, names in enumerate(targets):
            for name in names:
                if name in index:
                    out[row, index[name]] = 1.0
        return out

    def loss(self, logits, targets, label_smoothing=0.0):
        return F.binary_cross_entropy_with_logits(logits.float(), targets.float())

    def probabilities(self, logits):
        return logits.float().sigmoid()

    def decode(self, scores, labels, top_k=3):
        out = []
        for row in scores.tolist():
            ranked = sorted(zip(labels, row), key=lambda p: -p[1])
            chosen = [name for name, s in ranked if s >= THRESHOLD]
            out.append({
                "labels": chosen,
                "label": "|".join(chosen),
                "score": round(min((s for _, s in ranked if s >= THRESHOLD), default=ranked[0][1]), 6),
                "top_k": [{"label": n, "score": round(s, 6)} for n, s in ranked[:top_k]],
            })
        return out

    def quick_score(self, logits, targets):
        pred = logits.float().sigmoid() >= THRESHOLD
        gold = targets >= 0.5
        tp = (pred & gold).sum().item()
        denom = pred.sum().item() + gold.sum().item()
        return 2 * tp / denom if denom else 1.0

    def metrics(self, targets, predictions, scores, labels):
        from ..evaluation import multilabel_metrics

        return multilabel_metrics([list(t) for t in targets], [p["labels"] for p in predictions], labels)

    def report_data(self, examples, scored, labels):
        return self.report_fields(examples, [e.label for e in examples], [p["labels"] for p in scored.predictions],
                                  labels=labels)

    def agreement(self, reference, produced):
        """Share of texts whose thresholded label sets are identical."""
        return float(np.mean(np.all((reference >= THRESHOLD) == (produced >= THRESHOLD), axis=1)))
