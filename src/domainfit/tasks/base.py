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
    model_kind: str = "sequence"  # "sequence" (pooled → head), "token" (a head per token), "embedding"
    variant: str | None = None  # the pair task's flavour (classification, probability, score)
    report_as: str | None = None  # the report layout, when it differs from ``name``
    affine_output: bool = False  # the head's output is scaled by the training targets' std and mean
    needs_pair: bool = False  # inputs are two texts (--text-pair-column is required)
    splits_batches: bool = True  # a long batch may be cut into micro-batches (not with in-batch negatives)
    validation_score = None  # optional ``fn(model, encoded, pad_id, bf16, device) -> float``
    learning_rate_factor: float = 1.0  # scales the method's default learning rate for this task

    def encode_examples(self, tokenizer, examples: list, labels: list[str], max_length: int):
        """Model inputs plus targets for ``examples`` (an :class:`Encoded`)."""
        from ..data.batching import encode_texts

        pairs = [e.text_pair or "" for e in examples] if any(e.text_pair for e in examples) else None
        enc = encode_texts(tokenizer, [e.text for e in examples], pairs, max_length)
        if examples and examples[0].label is not None:
            enc.targets = self.encode([e.label for e in examples], labels)
        return enc

    def predict_examples(self, model, tokenizer, examples: list, labels: list[str], max_length: int,
                         batch_size: int = 64) -> tuple[list[dict], torch.Tensor]:
        """Decoded predictions and user-facing scores for ``examples`` (input order)."""
        from ..data.batching import encode_texts
        from ..training.loop import predict_logits

        pairs = [e.text_pair or "" for e in examples] if any(e.text_pair for e in examples) else None
        texts = [e.text for e in examples]
        if hasattr(model, "text_logits"):  # reads raw text (the zeroshot LM backend)
            logits = model.text_logits(texts, pairs)
        else:
            logits = predict_logits(model, encode_texts(tokenizer, texts, pairs, max_length),
                                    tokenizer.pad_token_id, batch_size)
        scores = self.probabilities(logits)
        return self.decode(scores, labels), scores

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
