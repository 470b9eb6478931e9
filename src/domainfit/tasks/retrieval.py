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

import math

import torch
import torch.nn.functional as F

from .base import Task

__all__ = ["RetrievalTask", "ranking_metrics", "RANK_CUTOFFS"]

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
        from ..training.loop import predict_logits

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
