"""Prediction from an artifact: batched, length-sorted, results in input order."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..artifact import load_plain_tokenizer, load_tokenizer, read_manifest
from ..artifact.load import load_companion, load_model
from ..core.errors import DomainfitError
from ..data.batching import encode_texts
from ..data.tokens import join_tokens
from ..modeling.predict import embed_texts, predict_logits
from ..tasks import get_task

__all__ = ["Predictor", "load"]


class Predictor:
    """A loaded artifact that predicts in the user's terms.

    Attributes:
        labels: the label names, in the order of the model's outputs (and of
            :meth:`predict_proba`'s columns).
        task: the :class:`~domainfit.tasks.Task`. manifest: ``domainfit.json``.

    Example:
        >>> model = load("my-model")                                     # doctest: +SKIP
        >>> model.predict(["where is my card?"])[0]["label"]              # doctest: +SKIP
        'card_arrival'
    """

    def __init__(self, path: str | Path, manifest: dict | None = None, *, model=None, tokenizer=None):
        self.path = Path(path)
        self.manifest = manifest or read_manifest(self.path)
        self.task = get_task(self.manifest["task"], self.manifest.get("task_variant"))
        self.labels: list[str] = list(self.manifest.get("labels", []))
        self.max_length: int = self.manifest["model"]["max_length"]
        self._tokenizer = tokenizer
        # An export whose tokenizer.json alone gives the same ids encodes without transformers;
        # the full tokenizer is loaded when something else needs it (explanations, entities).
        self._encoding = tokenizer
        if tokenizer is None and self.task.model_kind == "sequence":
            self._encoding = load_plain_tokenizer(self.path, self.manifest)
        if self._encoding is None:
            self._encoding = self.tokenizer  # loaded and checked: a missing one is refused
        self.model = (model if model is not None else load_model(self.path, self.manifest)).eval()
        companion = load_companion(self.path, self.manifest)
        if companion is not None:  # the artifact blends an n-gram model into the encoder's probabilities
            from ..modeling.ngram import Blended

            self.model = Blended(self.model, companion, self.manifest["companion"]["weight"], self._encoding,
                                 self.max_length)
        self._index = None
        self._evidence = None

    @property
    def tokenizer(self):
        """The model's tokenizer (transformers'), checked against the manifest; loaded on first
        use where predictions do not need it."""
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.path, self.manifest)
        return self._tokenizer

    @property
    def backend(self) -> str:
        """``torch`` or ``onnx`` (from the manifest)."""
        return self.manifest.get("backend", "torch")

    def __repr__(self) -> str:
        return f"Predictor({str(self.path)!r}, task={self.task.name!r}, labels={len(self.labels)})"

    def scores(self, texts: list[str], pairs: list[str] | None = None, batch_size: int = 64) -> torch.Tensor:
        """User-facing scores per text: probabilities ``(n, labels)`` or values ``(n,)``."""
        return self.task.text_scores(self.model, self._encoding, list(texts), pairs, self.max_length, batch_size)

    def predict_proba(self, texts: list[str] | str, pairs: list[str] | None = None,
                      batch_size: int = 64) -> np.ndarray:
        """Probabilities per text, ``(n, len(labels))`` float32, columns in the order of
        :attr:`labels` (scikit-learn's ``predict_proba``). Multi-label models give one
        independent probability per label; regression and score models give ``(n,)`` values.

        Example:
            >>> proba = model.predict_proba(["where is my card?"])         # doctest: +SKIP
            >>> model.labels[proba[0].argmax()]                             # doctest: +SKIP
            'card_arrival'
        """
        if isinstance(texts, str):
            texts = [texts]
            pairs = [pairs] if isinstance(pairs, str) else pairs
        self._check_inputs(texts, pairs)
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return self.scores(texts, pairs, batch_size).numpy().astype(np.float32)

    def features(self, texts: list[str], batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """The pooled text vectors a classifier's head reads, and the head's raw logits, from
        one pass: ``(n, hidden)`` and ``(n, labels)`` float32 arrays. For
        out-of-scope detection (:mod:`domainfit.ood`). Torch classification models only."""
        if self.backend != "torch" or not hasattr(self.model, "head_logits"):
            raise DomainfitError(f"{self.path}: features need a torch classification or regression model "
                                 f"(this is a {self.backend} {self.task.name} model).")
        encoded = encode_texts(self.tokenizer, list(texts), None, self.max_length)
        pooled = predict_logits(self.model, encoded, self.tokenizer.pad_token_id, batch_size, embeddings=True)
        with torch.no_grad():
            logits = self.model.head_logits(pooled) if len(texts) else torch.empty(0, len(self.labels))
        return pooled.numpy().astype(np.float32), logits.float().numpy()

    def _check_inputs(self, texts: list[str], pairs: list[str] | None) -> None:
        if self.task.cannot_predict:
            raise DomainfitError(self.task.cannot_predict)
        if self.task.needs_pair and (pairs is None or len(pairs) != len(texts)):
            raise DomainfitError("a pair model scores two texts: pass pairs=[...] with one second text per text.")

    def predict(self, texts: list[str] | str, pairs: list[str] | None = None, top_k: int = 3,
                batch_size: int = 64) -> list[dict[str, Any]]:
        """Predict for a list of texts (or one text).

        Returns:
            One dict per text: ``label`` and ``score`` (the best label and its probability;
            for regression and pair scores the predicted value), ``top_k`` (best labels with
            scores) and for multi-label ``labels`` (every label above 0.5). Token
            classification returns ``entities`` (``label``, ``start``, ``end`` character
            offsets, ``text``, ``score``), plus ``tokens`` and ``tags``.
        """
        if isinstance(texts, str):
            texts = [texts]
            pairs = [pairs] if isinstance(pairs, str) else pairs
        if not texts:
            return []
        self._check_inputs(texts, pairs)
        return self.task.predict_texts(self.model, self._encoding, list(texts), pairs, self.labels, self.max_length,
                                       top_k=top_k, batch_size=batch_size, word_split=self.word_split)

    def explain(self, texts: list[str] | str, target: str | None = None, method: str = "auto", *,
                pairs: list[str] | None = None, steps: int = 32) -> list[dict[str, Any]]:
        """Predict and say why: per text the prediction (as :meth:`predict`) plus an
        ``explanation``: ``method``, ``target`` (the label explained: ``target`` or the
        predicted one), ``target_score`` (its probability), ``words`` (each word of the input
        with ``start``/``end`` character offsets and a ``score``: higher pushed the model more
        towards the target), ``seconds``. Token classification explains each entity (in
        ``entities[i]["explanation"]``; ``explanation`` is the most confident one's).

        Args:
            method: ``auto``, ``occlusion``, ``deletion``, ``integrated-gradients`` or ``gradient-x-input``
                (see :mod:`domainfit.inference.explain`). steps: integrated gradients' steps.

        Example:
            >>> model.explain("my card has not arrived")[0]["explanation"]["words"][0]  # doctest: +SKIP
            {'word': 'my', 'start': 0, 'end': 2, 'score': 0.0123}
        """
        from .explain import explain

        if isinstance(texts, str):
            texts = [texts]
            pairs = [pairs] if isinstance(pairs, str) else pairs
        self._check_inputs(texts, pairs)
        return explain(self, texts, pairs=pairs, target=target, method=method, steps=steps)

    def add_evidence(self, records: list[dict], k: int = 3) -> list[dict]:
        """Add to each record (of :meth:`explain` or :meth:`predict`, with its ``text`` and
        ``pair``) ``evidence``: the ``k`` most similar training examples with their labels and
        cosine ``similarity``, where the artifact stores them (``training.evidence_index``);
        records are returned unchanged where it does not."""
        from .evidence import Evidence

        if self._evidence is None:
            self._evidence = Evidence.load(self.path) or False
        if not self._evidence or not records or self.backend != "torch":
            return records
        texts = [r["text"] for r in records]
        pairs = [r.get("pair") or "" for r in records] if any(r.get("pair") for r in records) else None
        found = self._evidence.nearest(embed_texts(self.model, self.tokenizer, texts, self.max_length, pairs=pairs), k)
        for record, hits in zip(records, found):
            record["evidence"] = hits
        return records

    @property
    def word_split(self) -> str:
        return self.manifest["model"].get("word_split", "words")

    def predict_tokens(self, examples: list, batch_size: int = 64) -> list[dict[str, Any]]:
        """Token classification on pre-split words: ``examples`` are :class:`Example` with
        ``tokens`` and ``offsets`` (or lists of words, joined by spaces)."""
        from ..data.types import Example

        ready = []
        for e in examples:
            if isinstance(e, Example):
                ready.append(e)
            else:
                text, offsets = join_tokens(e)
                ready.append(Example(text=text, tokens=list(e), offsets=offsets))
        preds, _ = self.task.predict_examples(self.model, self.tokenizer, ready, self.labels, self.max_length,
                                              batch_size)
        return preds

    def pair_scores(self, texts: list[str], pairs: list[str], batch_size: int = 64) -> list[float]:
        """One relevance score per (text, pair): the probability of the positive class for
        a pair classifier (see ``positive_label_index``), else the predicted score."""
        scores = self.scores(texts, pairs, batch_size) if self.task.needs_pair else None
        relevance = self.task.relevance(scores, self.labels) if scores is not None else None
        if relevance is None:
            raise DomainfitError(f"{self.path} is a {self.task.name} model; reranking needs a pair model.")
        return relevance

    def long_texts(self, texts: list[str]) -> list[int]:
        """1-based positions of texts longer than the model's maximum (they are truncated)."""
        out = []
        for start in range(0, len(texts), 512):
            ids = self.tokenizer(texts[start:start + 512], truncation=False, verbose=False)["input_ids"]
            out += [start + i + 1 for i, row in enumerate(ids) if len(row) > self.max_length]
        return out

    def embed(self, texts: list[str] | str, batch_size: int = 128):
        """L2-normalised embeddings ``(n, dim)`` as a float32 numpy array (retrieval models;
        other models return their pooled text vectors, normalised)."""
        if isinstance(texts, str):
            texts = [texts]
        return embed_texts(self.model, self.tokenizer, list(texts), self.max_length, batch_size)

    @property
    def index(self):
        """The artifact's search index (built by ``domainfit index``), or None."""
        if self._index is None:
            from .search import load_index

            self._index = load_index(self.path, embed=self.embed)
        return self._index

    def search(self, query: str | list[str], k: int = 5, *, rerank: "Predictor | str | Path | None" = None,
               candidates: int = 20) -> list:
        """The ``k`` best documents of the index for a query (a list of lists for a list).

        Args:
            rerank: a pair model (or its folder) that rescores the top ``candidates``
                (at least ``k``) and reorders them.

        Returns:
            Per query, dicts with ``id``, ``score``, ``text`` and the corpus's other columns.
        """
        from ..tasks.retrieval import rerank_rows
        from .search import Hit

        if self.task.model_kind != "embedding":  # only a retrieval model's vectors are comparable
            raise DomainfitError(f"{self.path} is a {self.task.name} model, which does not search: use domainfit "
                                 f"predict {self.path} for its labels, or train a retrieval model (domainfit train "
                                 "--task retrieval) to search a corpus.")
        if self.index is None:
            raise DomainfitError(f"{self.path} has no index: build one with domainfit index {self.path} --corpus FILE.")
        if k < 1:
            raise DomainfitError(f"k must be at least 1, got {k}.")
        queries = [query] if isinstance(query, str) else list(query)
        if any(not q or not q.strip() for q in queries):
            raise DomainfitError("the query is empty.")
        long = self.long_texts(queries)
        if long:
            import warnings

            warnings.warn(f"{len(long)} query(ies) longer than {self.max_length} tokens are truncated.", stacklevel=2)
        reranker = Predictor(rerank) if isinstance(rerank, (str, Path)) else rerank
        depth = max(k, candidates) if reranker is not None else k
        rows = self.index.search_rows(queries, depth)
        if reranker is not None:
            rows = [rerank_rows(reranker, q, row, self.index, max(k, candidates)) for q, row in zip(queries, rows)]
        results = [[Hit(self.index.ids[j], score, self.index.texts[j], self.index.fields[j]).to_dict()
                    for j, score in row[:k]] for row in rows]
        return results[0] if isinstance(query, str) else results

    def answer(self, items: list[dict]) -> list:
        """Answers for items of prediction requests (``Task.request_items``), in one model call."""
        return self.task.answer_items(self, items)

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
