"""Prediction from an artifact: batched, length-sorted, results in input order."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch

from .artifact import load_model, read_manifest
from .data.batching import encode_texts
from .tasks import get_task
from .training.loop import predict_logits

__all__ = ["Predictor", "load"]


class Predictor:
    """A loaded artifact that predicts in the user's terms.

    Example:
        >>> model = load("my-model")                                     # doctest: +SKIP
        >>> model.predict(["where is my card?"])[0]["label"]              # doctest: +SKIP
        'card_arrival'
    """

    def __init__(self, path: str | Path):
        from transformers import AutoTokenizer

        self.path = Path(path)
        self.manifest = read_manifest(self.path)
        self.task = get_task(self.manifest["task"])
        self.labels: list[str] = list(self.manifest.get("labels", []))
        self.max_length: int = self.manifest["model"]["max_length"]
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.path))
        self.model = load_model(self.path, self.manifest)

    def __repr__(self) -> str:
        return f"Predictor({str(self.path)!r}, task={self.task.name!r}, labels={len(self.labels)})"

    def scores(self, texts: list[str], pairs: list[str] | None = None, batch_size: int = 64) -> torch.Tensor:
        """User-facing scores per text: probabilities ``(n, labels)`` or values ``(n,)``."""
        if hasattr(self.model, "text_logits"):  # reads raw text (the zeroshot LM backend)
            logits = self.model.text_logits(list(texts), pairs)
        else:
            encoded = encode_texts(self.tokenizer, list(texts), pairs, self.max_length)
            logits = predict_logits(self.model, encoded, self.tokenizer.pad_token_id, batch_size)
        return self.task.probabilities(logits) if len(texts) else torch.empty(0)

    def predict(self, texts: list[str] | str, pairs: list[str] | None = None, top_k: int = 3,
                batch_size: int = 64) -> list[dict[str, Any]]:
        """Predict for a list of texts (or one text).

        Returns:
            One dict per text: ``label`` and ``score`` (the best label and its probability;
            for regression the predicted value), ``top_k`` (best labels with scores) and for
            multi-label ``labels`` (every label above 0.5).
        """
        if isinstance(texts, str):
            texts = [texts]
        if not texts:
            return []
        return self.task.decode(self.scores(texts, pairs, batch_size), self.labels, top_k)

    def predict_stream(self, rows: Iterable[dict], text_column: str = "text", pair_column: str | None = None,
                       chunk_size: int = 1024, top_k: int = 3) -> Iterator[tuple[dict, dict]]:
        """Predict over an iterable of row dicts in bounded memory, ``chunk_size`` at a time.

        Yields ``(row, prediction)`` pairs in input order.
        """
        chunk: list[dict] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) >= chunk_size:
                yield from self._predict_chunk(chunk, text_column, pair_column, top_k)
                chunk = []
        if chunk:
            yield from self._predict_chunk(chunk, text_column, pair_column, top_k)

    def _predict_chunk(self, chunk, text_column, pair_column, top_k):
        texts = [str(r.get(text_column) or "") for r in chunk]
        pairs = [str(r.get(pair_column) or "") for r in chunk] if pair_column else None
        return zip(chunk, self.predict(texts, pairs, top_k))


def load(path: str | Path) -> Predictor:
    """Load an artifact folder for prediction (no training data, config or network needed)."""
    return Predictor(path)
