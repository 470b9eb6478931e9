"""The interface every task implements.

A task says what is predicted, and everything that callers would otherwise decide by the
task's name: how training data is split, how an evaluation set is scored and laid out in
a report, what an export's parity check compares, what a prediction request must hold,
and how a batch of such requests is answered. Outside ``tasks/`` code asks the task.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch

from ..core.errors import ConfigError, DataError, DomainfitError, RequestError

__all__ = ["Task", "Scored", "RequestLimits", "Runtime"]


class Scored(NamedTuple):
    """An evaluation set scored: the metrics (in the user's terms), one decoded prediction
    per example, and the user-facing scores behind them (probabilities ``(n, labels)``,
    values ``(n,)``, per-word probability rows, or an empty tensor)."""

    metrics: dict
    predictions: list
    scores: Any


@dataclass(frozen=True)
class RequestLimits:
    """What one prediction request may hold."""

    max_texts: int = 256
    max_chars: int = 10_000


class Runtime(Protocol):
    """What :meth:`Task.answer_items` calls on a loaded model (``domainfit.inference.Predictor``)."""

    labels: list[str]
    index: Any  # a retrieval model's search index (a ``Corpus``), or None

    def scores(self, texts: list[str], pairs: list[str] | None = None, batch_size: int = 64) -> torch.Tensor: ...

    def predict(self, texts: list[str], pairs: list[str] | None = None, top_k: int = 3) -> list[dict]: ...

    def predict_tokens(self, examples: list) -> list[dict]: ...

    def search(self, query: list[str], k: int = 5) -> list: ...


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
    variant: str | None = None  # the pair task's flavour (classification, probability, score); token: case-markers
    report_as: str | None = None  # the report layout, when it differs from ``name``
    affine_output: bool = False  # the head's output is scaled by the training targets' std and mean
    needs_pair: bool = False  # inputs are two texts (--text-pair-column is required)
    pair_description: str = "two texts per row"  # what the second column holds, for messages
    splits_batches: bool = True  # a long batch may be cut into micro-batches (not with in-batch negatives)
    validation_score = None  # optional ``fn(model, encoded, pad_id, bf16, device) -> float``
    learning_rate_factor: float = 1.0  # scales the method's default learning rate for this task
    # settings this task trains best with where the user set nothing (dotted keys, measured:
    # docs/training.md); the user's YAML, --set and options still win
    training_defaults: dict = {}
    ngram_companion: bool = False  # one label per text: an n-gram model's probabilities can be blended in
    soft_targets: bool = False  # trains on a probability per label (a teacher's, or an even spread for outliers)
    text_classes: bool = False  # assigns classes (with names a label file can list) to one text
    multi_label: bool = False  # any number of classes per text (one sigmoid each)
    metrics_read_probabilities: bool = False  # metrics() takes the probability matrix (calibration)
    cannot_predict: str | None = None  # why ``predict`` does not apply to this task, if it does not
    response_key: str = "predictions"  # where the server puts the answers

    # ------------------------------------------------------------------ training data
    def for_targets(self, targets: list[Any]) -> Task:
        """The task to train for these training targets (the pair task picks its flavour)."""
        return self

    def for_tokenizer(self, tokenizer, enabled: bool = True) -> Task:
        """The task to train with this tokenizer (token classification: with case markers
        where it lowercases; ``enabled`` is ``training.case_markers``)."""
        return self

    def label_list(self, targets: list[Any]) -> list[str]:
        """The sorted label names found in training targets."""
        return []

    def check_label_set(self, labels: list[str], source: str, column: str) -> None:
        """Refuse a training set whose labels cannot train this task (raises DataError)."""

    def split(self, examples: list, val_fraction: float, seed: int, *, source: str, column: str) -> tuple[list, list]:
        """Hold out a seeded validation share of ``examples`` (stratified by class when the
        task has classes; every class must then have 2 examples).

        Raises:
            DataError: a class too small for a stratified split, with its lines.
        """
        from ..data import check_split_possible, train_val_split

        if self.stratify:
            problems = check_split_possible(examples, val_fraction, file=source, column=column)
            if problems:
                raise DataError(problems, hint="Or give a separate validation file (--validation-data).")
        return train_val_split(examples, val_fraction, seed, stratify=self.stratify)

    def prepare_training(self, model, tokenizer, examples: list, *, hard_negatives: int, max_length: int) -> None:
        """Change the training examples with the untrained model before training (retrieval
        mines hard negatives); nothing by default."""

    def model_extras(self, examples: list) -> dict:
        """Extra entries of the manifest's ``model`` section, read from the training data."""
        return {}

    def encode_examples(self, tokenizer, examples: list, labels: list[str], max_length: int):
        """Model inputs plus targets for ``examples`` (an :class:`Encoded`)."""
        from ..data.batching import encode_texts

        pairs = [e.text_pair or "" for e in examples] if any(e.text_pair for e in examples) else None
        enc = encode_texts(tokenizer, [e.text for e in examples], pairs, max_length)
        if examples and examples[0].label is not None:
            enc.targets = self.encode([e.label for e in examples], labels)
        return enc

    # ------------------------------------------------------------------ prediction
    def text_scores(self, model, tokenizer, texts: list[str], pairs: list[str] | None, max_length: int,
                    batch_size: int = 64) -> torch.Tensor:
        """User-facing scores per text: probabilities ``(n, labels)`` or values ``(n,)``."""
        from ..data.batching import encode_texts
        from ..modeling.predict import predict_logits

        if not texts:
            return torch.empty(0)
        if hasattr(model, "text_logits"):  # reads raw text (the zeroshot LM backend)
            logits = model.text_logits(list(texts), pairs)
        else:
            logits = predict_logits(model, encode_texts(tokenizer, list(texts), pairs, max_length),
                                    tokenizer.pad_token_id, batch_size)
        return self.probabilities(logits)

    def predict_texts(self, model, tokenizer, texts: list[str], pairs: list[str] | None, labels: list[str],
                      max_length: int, *, top_k: int = 3, batch_size: int = 64, word_split: str = "words") -> list[dict]:
        """Decoded predictions for raw texts, in input order (see ``Predictor.predict``)."""
        if self.cannot_predict:
            raise DomainfitError(self.cannot_predict)
        return self.decode(self.text_scores(model, tokenizer, texts, pairs, max_length, batch_size), labels, top_k)

    def predict_examples(self, model, tokenizer, examples: list, labels: list[str], max_length: int,
                         batch_size: int = 64) -> tuple[list[dict], torch.Tensor]:
        """Decoded predictions and user-facing scores for ``examples`` (input order)."""
        pairs = [e.text_pair or "" for e in examples] if any(e.text_pair for e in examples) else None
        scores = self.text_scores(model, tokenizer, [e.text for e in examples], pairs, max_length, batch_size)
        return self.decode(scores, labels), scores

    def relevance(self, scores: torch.Tensor, labels: list[str]) -> list[float] | None:
        """One relevance score per scored pair (for reranking), or None when this task does
        not score pairs."""
        return None

    # ------------------------------------------------------------------ evaluation
    def score(self, model, tokenizer, examples: list, labels: list[str], max_length: int, *, index=None,
              reranker=None, candidates: int = 20) -> Scored:
        """Predictions and metrics for labelled ``examples``.

        ``index``, ``reranker`` and ``candidates`` are for tasks that rank documents (see
        ``RetrievalTask.score``); other tasks refuse a reranker.
        """
        if reranker is not None:
            raise ConfigError(f"--rerank reorders a retrieval model's results; this is a {self.name} model.")
        predictions, scores = self.predict_examples(model, tokenizer, examples, labels, max_length)
        probabilities = scores.numpy() if self.metrics_read_probabilities else None
        metrics = self.metrics([e.label for e in examples], predictions, probabilities, labels)
        return Scored(metrics, predictions, scores)

    def report_data(self, examples: list, scored: Scored, labels: list[str]) -> dict:
        """Keyword arguments of ``evaluation.write_report`` for a scored set: the report layout
        (``task``), gold and predicted values, probabilities and labels."""
        return self.report_fields(examples, [e.label for e in examples], [p["label"] for p in scored.predictions])

    def report_fields(self, examples: list, y_true: list, y_pred: list, probs=None, labels=None) -> dict:
        """:meth:`report_data` from its parts, in this task's report layout."""
        return {"task": self.report_as or self.name, "texts": [e.text for e in examples], "y_true": y_true,
                "y_pred": y_pred, "probs": probs, "labels": labels, "lines": [e.line for e in examples]}

    # ------------------------------------------------------------------ export parity
    def parity_outputs(self, model, tokenizer, examples: list, labels: list[str], max_length: int) -> np.ndarray:
        """What an exported graph must reproduce, one row per example: the user-facing scores."""
        pairs = [e.text_pair or "" for e in examples] if self.needs_pair else None
        return self.text_scores(model, tokenizer, [e.text for e in examples], pairs, max_length).numpy()

    def agreement(self, reference: np.ndarray, produced: np.ndarray) -> float:
        """Share of identical decisions between two :meth:`parity_outputs`: the same top label,
        or (one value per text) a value within 1% of the reference's range."""
        if reference.ndim == 1:
            span = max(float(np.ptp(reference)), 1e-6)
            return float(np.mean(np.abs(reference - produced) <= 0.01 * span))
        return float(np.mean(reference.argmax(-1) == produced.argmax(-1)))

    # ------------------------------------------------------------------ serving
    def request_items(self, request: Mapping[str, Any], limits: RequestLimits) -> list[dict]:
        """Check a prediction request (``texts``, with ``pairs`` for a pair model; ``top_k``)
        and turn it into batch items.

        Raises:
            RequestError: what is wrong, in the sender's terms.
        """
        texts, pairs = request.get("texts"), request.get("pairs")
        if request.get("tokens") is not None:
            raise RequestError("tokens are for token-classification models; send texts")
        if texts is None:
            raise RequestError("send {\"texts\": [\"...\"]}")
        check_count(texts, "texts", limits)
        for n, text in enumerate(texts):
            check_text(text, f"texts[{n}]", limits)
        top_k = request.get("top_k", 3)
        if self.needs_pair:
            if pairs is None or len(pairs) != len(texts):
                raise RequestError("a pair model needs pairs: one second text per text")
            for n, text in enumerate(pairs):
                check_text(text, f"pairs[{n}]", limits)
            return [{"text": t, "pair": p, "top_k": top_k} for t, p in zip(texts, pairs)]
        if pairs is not None:
            raise RequestError("pairs are only for pair models")
        return [{"text": t, "top_k": top_k} for t in texts]

    def answer_items(self, runtime: Runtime, items: list[dict]) -> list:
        """Answers for a micro-batch of items from :meth:`request_items` (one model call)."""
        pairs = [i["pair"] for i in items] if self.needs_pair else None
        scores = runtime.scores([i["text"] for i in items], pairs)
        return [self.decode(scores[n:n + 1], runtime.labels, i["top_k"])[0] for n, i in enumerate(items)]

    def response(self, answers: list) -> dict:
        """The body part of a prediction response that holds the answers."""
        return {self.response_key: answers}

    def log_fields(self, item: dict, answer: Any) -> tuple[str, str | None, float | None]:
        """What the prediction log keeps of one answered item: its input text (a pair's two
        texts on two lines), the top label and its score."""
        text = item["text"] if "pair" not in item else f"{item['text']}\n{item['pair']}"
        return text, answer.get("label"), answer.get("score")

    # ------------------------------------------------------------------ the task proper
    def what_is_trained(self, labels: list[str]) -> str:
        """What a training run builds, for its first status line (e.g. ``77 outputs``)."""
        return f"a head with {self.num_outputs(labels)} output(s)"

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


def check_count(values: list, what: str, limits: RequestLimits) -> None:
    """A request's list is neither empty nor longer than the limit."""
    if not values:
        raise RequestError(f"{what} is empty")
    if len(values) > limits.max_texts:
        raise RequestError(f"{len(values)} {what}; the limit is {limits.max_texts} per request", "too_many_texts",
                           413)


def check_text(text: str, where: str, limits: RequestLimits) -> None:
    """A request's text is not blank and within the character limit."""
    if not text.strip():
        raise RequestError(f"{where} is empty")
    if len(text) > limits.max_chars:
        raise RequestError(f"{where} has {len(text)} characters; the limit is {limits.max_chars}", "text_too_long",
                           413)
