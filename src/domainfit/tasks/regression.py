"""Regression: one output, mean squared error.

The model's output is ``head(x) * std + mean`` with the training targets' mean and standard
deviation kept as buffers in the weights (see ``modeling.DomainModel``), so the first
prediction is already at the right scale whatever units the user's numbers are in. AdamW
is invariant to the gradient's scale, so the loss is computed in the user's units.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Task


class RegressionTask(Task):
    name = "regression"
    primary_metric = "r2"
    affine_output = True

    def num_outputs(self, labels):
        return 1

    def encode(self, targets, labels):
        return torch.tensor([float(t) for t in targets], dtype=torch.float32)

    def loss(self, logits, targets, label_smoothing=0.0):
        return F.mse_loss(logits.float().squeeze(-1), targets.float())

    def probabilities(self, logits):
        return logits.float().squeeze(-1)

    def decode(self, scores, labels, top_k=3):
        return [{"label": round(v, 6), "score": round(v, 6)} for v in scores.tolist()]

    def quick_score(self, logits, targets):
        pred = logits.float().squeeze(-1)
        ss_res = ((pred - targets) ** 2).sum()
        ss_tot = ((targets - targets.mean()) ** 2).sum().clamp_min(1e-12)
        return float(1 - ss_res / ss_tot)

    def metrics(self, targets, predictions, scores, labels):
        from ..evaluation import regression_metrics

        return regression_metrics([float(t) for t in targets], [float(p["label"]) for p in predictions])
