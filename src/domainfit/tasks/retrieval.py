"""Retrieval: a bi-encoder that embeds queries and documents into one space.

Training data are (query, positive document) pairs. Within a batch, every other
example's document is a negative for a query (in-batch negatives; cross-entropy over
``scale × cosine``, as sentence-transformers' MultipleNegativesRankingLoss); optional hard
negatives, mined with the untuned model before training, are added as extra columns. A
document that is the positive of several queries in one batch (ten paraphrases of one FAQ
question) is not a negative for any of them: such false negatives are masked out.

Embeddings are mean-pooled and L2-normalised, so a dot product is the cosine similarity.
Ranking metrics (``recall@k``: the share of queries with a relevant document in the top k,
often called hit rate or success@k; ``mrr@10``; ``ndcg@10`` with binary relevance) live in
:func:`ranking_metrics`.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..core.errors import ConfigError, DataError, DomainfitError, Problem, RequestError
from .base import Scored, Task, check_text

__all__ = ["RetrievalTask", "ranking_metrics", "RANK_CUTOFFS", "Corpus", "rerank_rows", "mine_hard_negatives",
           "split_by_positive"]

RANK_CUTOFFS = (1, 5, 10)


class RetrievalTask(Task):
    name = "retrieval"
    primary_metric = "mrr@10"
    model_kind = "embedding"
    report_as = "retrieval"
    splits_batches = False  # cutting a batch would shrink the in-batch negatives
    # No new head to learn, and a pretrained embedding space to keep: full fine-tuning at 2e-5
    # (sentence-transformers' default) instead of the classification default 1.5e-4; the
    # other methods' defaults scaled alike.
    learning_rate_factor = 2e-5 / 1.5e-4
    needs_pair = True
    pair_description = "(query, positive document)"
    cannot_predict = ("a retrieval model embeds and searches: search it with domainfit search (after domainfit "
                      "index) or load(path).search(query, k); embed texts with load(path).embed(texts).")
    response_key = "results"

    def what_is_trained(self, labels):
        return ("a bi-encoder (queries and documents share the encoder; pooled, L2-normalised vectors), with "
                "in-batch negatives: cross-entropy over scaled cosine similarities")

    def split(self, examples, val_fraction, seed, *, source, column):
        return split_by_positive(examples, val_fraction, seed)

    def prepare_training(self, model, tokenizer, examples, *, hard_negatives, max_length):
        if hard_negatives:
            from ..core.ui import say

            say(f"Mining {hard_negatives} hard negative(s) per query with the untuned model...")
            mine_hard_negatives(model, tokenizer, examples, hard_negatives, max_length)

    def num_outputs(self, labels):
        return 0

    def encode(self, targets, labels):
        """Document ids for document texts: equal texts (stripped) get equal ids."""
        ids: dict[str, int] = {}
        return [ids.setdefault((t or "").strip(), len(ids)) for t in targets]

    def encode_examples(self, tokenizer, examples, labels, max_length):
        """Queries as the main input, positives as ``pair``, mined negatives as ``neg0``...;
        targets are the ids of each row's positive and negatives (equal texts, equal ids)."""
        from ..data.batching import encode_texts

        enc = encode_texts(tokenizer, [e.text for e in examples], None, max_length)
        positives = [e.text_pair or "" for e in examples]
        enc.extra = {"pair": encode_texts(tokenizer, positives, None, max_length).input_ids}
        negatives = [e.negatives or [] for e in examples]
        count = min((len(n) for n in negatives), default=0)
        columns = [positives]
        for k in range(count):
            columns.append([n[k] for n in negatives])
            enc.extra[f"neg{k}"] = encode_texts(tokenizer, columns[-1], None, max_length).input_ids
        ids = self.encode([t for column in columns for t in column], labels)  # one id space for all columns
        enc.targets = torch.tensor(ids, dtype=torch.long).reshape(len(columns), len(examples)).t().contiguous()
        return enc

    def loss(self, logits, targets, label_smoothing=0.0):
        """``logits``: ``(b, b × columns)``, every query against every positive, then every
        first negative... ``targets``: ``(b, columns)`` document ids."""
        b = logits.shape[0]
        docs = targets.t().reshape(-1)  # column-major: positives first, like the logits
        same = docs.unsqueeze(0) == targets[:, :1]  # (b, all docs): the same text as my positive
        own = torch.zeros_like(same)
        own[torch.arange(b), torch.arange(b)] = True
        # -1e4, not -inf: exp() of it is 0 all the same, and no inf can reach the loss.
        logits = logits.float().masked_fill(same & ~own, -1e4)
        return F.cross_entropy(logits, torch.arange(b, device=logits.device))  # no label smoothing over documents

    def probabilities(self, logits):
        return logits.float()

    def decode(self, scores, labels, top_k=3):
        """Query × document similarities → per query the ``top_k`` documents (row index) with scores."""
        values, indices = scores.topk(min(top_k, scores.shape[-1]), dim=-1)
        return [[{"label": int(i), "score": round(float(v), 6)} for v, i in zip(vs, ix)]
                for vs, ix in zip(values.tolist(), indices.tolist())]

    def quick_score(self, logits, targets):
        """Share of queries whose own document scores highest in the batch (copies count as right)."""
        docs = targets.t().reshape(-1)
        best = logits.argmax(-1)
        return float((docs[best] == targets[:, 0]).float().mean())

    def validation_score(self, model, encoded, pad_id, bf16, device) -> float:
        """MRR@10 of the validation queries against the validation positives."""
        from ..data.batching import Encoded
        from ..modeling.predict import predict_logits

        queries = predict_logits(model, Encoded(encoded.input_ids), pad_id, bf16=bf16, device=device,
                                 embeddings=True)
        pos_ids = encoded.targets[:, 0].tolist()
        first: dict[int, int] = {}
        for row, doc in enumerate(pos_ids):
            first.setdefault(doc, row)
        doc_rows = list(first.values())
        docs = predict_logits(model, Encoded([encoded.extra["pair"][r] for r in doc_rows]), pad_id, bf16=bf16,
                              device=device, embeddings=True)
        doc_index = {doc: n for n, doc in enumerate(first)}
        ranking = (queries @ docs.t()).topk(min(10, len(doc_rows)), dim=-1).indices.tolist()
        relevant = [{doc_index[d]} for d in pos_ids]
        return ranking_metrics(ranking, relevant)["mrr@10"]

    def metrics(self, targets, predictions, scores, labels):
        """Ranking metrics from predictions holding ``ranking`` (ids, best first) and ``relevant``."""
        return ranking_metrics([p["ranking"] for p in predictions], [set(p["relevant"]) for p in predictions])

    def score(self, model, tokenizer, examples, labels, max_length, *, index=None, reranker=None, candidates=20):
        """Ranking metrics for (query, positive) examples.

        With an ``index`` (a :class:`Corpus`, e.g. the artifact's), each positive names the
        relevant corpus ids (``a|b`` for several) or a document's exact text; without one, the
        corpus is the examples' distinct positives. A ``reranker`` (a pair model's predictor)
        reorders the top ``candidates``.
        """
        if index is None:
            from ..modeling.predict import embed_texts

            docs = list(dict.fromkeys((e.text_pair or "").strip() for e in examples))
            index = Corpus(embed_texts(model, tokenizer, docs, max_length), docs, [str(i) for i in range(len(docs))],
                           lambda texts: embed_texts(model, tokenizer, texts, max_length))
        ids = {doc_id: n for n, doc_id in enumerate(index.ids)}
        texts = {t.strip(): n for n, t in enumerate(index.texts)}
        relevant, problems = [], []
        for e in examples:
            rel = _relevance(e.text_pair or "", ids, texts)
            if rel is None:
                problems.append(Problem("<eval data>", e.line, None, f"the positive {str(e.text_pair)[:60]!r} is "
                                        "neither an id nor the text of a document in the index"))
            relevant.append(rel or set())
        if problems:
            raise DataError(problems, hint="Give corpus ids (several as a|b) or exact document texts.")
        depth = max(10, candidates if reranker is not None else 10)
        rows = index.search_rows([e.text for e in examples], depth)
        if reranker is not None:
            rows = [rerank_rows(reranker, e.text, row, index, candidates) for e, row in zip(examples, rows)]
        preds = [{"ranking": [index.ids[j] for j, _ in row[:10]], "relevant": [index.ids[j] for j in rel]}
                 for row, rel in zip(rows, relevant)]
        return Scored(self.metrics(None, preds, None, None), preds, torch.empty(0))

    def report_data(self, examples, scored, labels):
        return self.report_fields(examples, [sorted(p["relevant"]) for p in scored.predictions],
                                  [p["ranking"] for p in scored.predictions])

    def parity_outputs(self, model, tokenizer, examples, labels, max_length):
        """The normalised text vectors."""
        from ..modeling.predict import embed_texts

        return embed_texts(model, tokenizer, [e.text for e in examples], max_length)

    def agreement(self, reference, produced):
        """Share of texts whose nearest neighbour among the reference vectors stays the same."""
        return float(np.mean((reference @ reference.T).argmax(1) == (reference @ produced.T).argmax(1)))

    def request_items(self, request, limits):
        """``{"query": "...", "k": 5}``: one search."""
        query = request.get("query")
        if query is None:
            raise RequestError("a retrieval model searches: send {\"query\": \"...\", \"k\": 5}")
        check_text(query, "query", limits)
        return [{"query": query, "k": request.get("k", 5)}]

    def answer_items(self, runtime, items):
        if runtime.index is None:
            raise RequestError("this retrieval model has no index: build one with domainfit index", "no_index", 409)
        k = max(i["k"] for i in items)
        hits = runtime.search([i["query"] for i in items], k)
        return [h[:i["k"]] for h, i in zip(hits, items)]

    def response(self, answers):
        return {self.response_key: answers[0]}

    def log_fields(self, item, answer):
        """The query, its best document (row index) and that document's score."""
        best = answer[0] if answer else {}
        label = best.get("label")
        return item["query"], None if label is None else str(label), best.get("score")


class Corpus:
    """Documents as normalised vectors, searchable by a query's vector (exact: one matrix
    product, then ``argpartition``).

    Args:
        vectors: ``(documents, dim)`` float32, L2-normalised.
        texts, ids: each document's text and id.
        embed: ``fn(texts) -> (n, dim)`` normalised query vectors (the model that made ``vectors``).
    """

    def __init__(self, vectors: np.ndarray, texts: list[str], ids: list[str],
                 embed: Callable[[list[str]], np.ndarray] | None = None):
        self.vectors = vectors
        self.texts = texts
        self.ids = ids
        self.embed = embed

    def __len__(self) -> int:
        return len(self.ids)

    def search_vectors(self, queries: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """Per query, ``k`` ``(row, score)`` pairs, best first."""
        from ..modeling.predict import top_k

        out = []
        for start in range(0, len(queries), 256):  # bounded memory: 256 queries × corpus at a time
            scores = queries[start:start + 256] @ self.vectors.T
            best = top_k(scores, k)
            out += [[(int(j), float(scores[i, j])) for j in row] for i, row in enumerate(best)]
        return out

    def search_rows(self, queries: list[str], k: int) -> list[list[tuple[int, float]]]:
        """Per query text, ``k`` ``(row, score)`` pairs, best first."""
        if self.embed is None:
            raise DomainfitError("this corpus has no model to embed queries with.")
        return self.search_vectors(self.embed(queries), k)


def rerank_rows(reranker, query: str, row: list[tuple[int, float]], corpus: Corpus, candidates: int):
    """Reorder the first ``candidates`` of a search's ``(row, score)`` list by a pair model's
    relevance (``reranker.pair_scores``); the rest keep their place after them."""
    top = row[:candidates]
    scores = reranker.pair_scores([query] * len(top), [corpus.texts[j] for j, _ in top])
    order = sorted(range(len(top)), key=lambda i: -scores[i])
    return [(top[i][0], float(scores[i])) for i in order] + row[candidates:]


def mine_hard_negatives(model, tokenizer, examples: list, count: int, max_length: int) -> None:
    """Give each example the ``count`` documents the (untuned) model ranks highest among the
    other examples' positives, skipping its own positive (and equal texts)."""
    from ..modeling.predict import embed_texts, top_k

    docs = list(dict.fromkeys((e.text_pair or "").strip() for e in examples))
    if len(docs) <= count:
        raise ConfigError(f"data.hard_negatives={count} needs more than {count} different positive documents; "
                          f"the training data has {len(docs)}.")
    doc_vectors = embed_texts(model, tokenizer, docs, max_length)
    query_vectors = embed_texts(model, tokenizer, [e.text for e in examples], max_length)
    ranked = top_k(query_vectors @ doc_vectors.T, count + 1)
    for example, row in zip(examples, ranked):
        own = (example.text_pair or "").strip()
        example.negatives = [docs[j] for j in row if docs[j] != own][:count]


def split_by_positive(examples: list, val_fraction: float, seed: int) -> tuple[list, list]:
    """Hold out whole documents: every query of a held-out positive goes to validation, so
    paraphrases of one question never sit on both sides."""
    groups: dict[str, list] = {}
    for example in examples:
        groups.setdefault((example.text_pair or "").strip(), []).append(example)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    want = max(1, round(val_fraction * len(examples)))
    val_keys, held = set(), 0
    for key in keys:
        if held >= want or len(val_keys) >= len(keys) - 1:
            break
        val_keys.add(key)
        held += len(groups[key])
    return ([e for e in examples if (e.text_pair or "").strip() not in val_keys],
            [e for e in examples if (e.text_pair or "").strip() in val_keys])


def _relevance(positive: str, ids: dict[str, int], texts: dict[str, int]) -> set[int] | None:
    """Corpus rows a label points to: ids (``a|b`` or a JSON list), else an exact text."""
    value = positive.strip()
    parts = json.loads(value) if value.startswith("[") else value.split("|")
    found = {ids[str(p).strip()] for p in parts if str(p).strip() in ids}
    if found:
        return found
    return {texts[value]} if value in texts else None


def ranking_metrics(rankings: list[list[int]], relevant: list[set]) -> dict:
    """Hit rate at 1/5/10 (``recall@k``), MRR@10 and NDCG@10 with binary relevance.

    Args:
        rankings: per query, document ids best first (at least the top 10 when available).
        relevant: per query, the set of relevant document ids.

    Example:
        >>> ranking_metrics([[3, 1, 2]], [{1}])["mrr@10"]
        0.5
    """
    n = len(rankings)
    hits = {k: 0.0 for k in RANK_CUTOFFS}
    mrr = ndcg = 0.0
    for ranked, rel in zip(rankings, relevant, strict=True):
        top = ranked[:10]
        first = next((i for i, doc in enumerate(top) if doc in rel), None)
        for k in RANK_CUTOFFS:
            hits[k] += first is not None and first < k
        if first is not None:
            mrr += 1.0 / (first + 1)
        dcg = sum(1.0 / math.log2(i + 2) for i, doc in enumerate(top) if doc in rel)
        ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(rel), 10)))
        ndcg += dcg / ideal if ideal else 0.0
    out = {f"recall@{k}": hits[k] / n if n else 0.0 for k in RANK_CUTOFFS}
    out.update({"mrr@10": mrr / n if n else 0.0, "ndcg@10": ndcg / n if n else 0.0, "n": n,
                "primary_metric": "mrr@10"})
    return out
