"""The interface every task implements."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["Task"]


class Task:
    """What is predicted. Subclasses set ``name`` and ``primary_metric``.

    ``labels`` below is the task's label list as stored in the artifact (empty for
    regression); logits have shape ``(batch, num_outputs(labels))``.
    """

    name: str = ""
    primary_metric: str = ""
    higher_is_better: bool = True
    stratify: bool = False

    def label_list(self, targets: list[Any]) -> list[str]:
        """The sorted label names found in training targets."""
        return []

    def num_outputs(self, labels: list[str]) -> int:
        raise NotImplementedError

    def encode(self, targets: list[Any], labels: list[str]) -> torch.Tensor:
        """Turn parsed targets into a tensor for the loss."""
        raise NotImplementedError

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
        raise NotImplementedError

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Scores shown to users (softmax, sigmoid, or the raw value for regression)."""
        raise NotImplementedError

    def decode(self, scores: torch.Tensor, labels: list[str], top_k: int = 3) -> list[dict]:
        """Per example: ``{"label": ..., "score": ..., "top_k": [...]}`` in the user's terms."""
        raise NotImplementedError

    def quick_score(self, logits: torch.Tensor, targets: torch.Tensor) -> float:
        """The validation metric used for early stopping, from tensors (fast)."""
        raise NotImplementedError

    def metrics(self, targets: list[Any], predictions: list[dict], scores: Any, labels: list[str]) -> dict:
        """Full evaluation metrics in the user's terms."""
        raise NotImplementedError
