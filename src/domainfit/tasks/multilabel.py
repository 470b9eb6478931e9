"""Multi-label classification: one sigmoid per label, threshold 0.5."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .base import Task

THRESHOLD = 0.5


class MultiLabelTask(Task):
    name = "multilabel"
    primary_metric = "micro_f1"

    def label_list(self, targets: list[Any]) -> list[str]:
        return sorted({str(t) for ts in targets for t in ts})

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
