"""The interface every task implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch

__all__ = ["Task"]


class Task(ABC):
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

    @abstractmethod
    def num_outputs(self, labels: list[str]) -> int:
        ...

    @abstractmethod
    def encode(self, targets: list[Any], labels: list[str]) -> torch.Tensor:
        """Turn parsed targets into a tensor for the loss."""
        ...

    @abstractmethod
    def loss(self, logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
        ...

    @abstractmethod
    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Scores shown to users (softmax, sigmoid, or the raw value for regression)."""
        ...

    @abstractmethod
    def decode(self, scores: torch.Tensor, labels: list[str], top_k: int = 3) -> list[dict]:
        """Per example: ``{"label": ..., "score": ..., "top_k": [...]}`` in the user's terms."""
        ...

    @abstractmethod
    def quick_score(self, logits: torch.Tensor, targets: torch.Tensor) -> float:
        """The validation metric used for early stopping, from tensors (fast)."""
        ...

    @abstractmethod
    def metrics(self, targets: list[Any], predictions: list[dict], scores: Any, labels: list[str]) -> dict:
        """Full evaluation metrics in the user's terms."""
        ...
