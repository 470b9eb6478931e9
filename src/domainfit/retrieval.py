"""Embeddings, a searchable index stored inside the artifact, reranking, ranking metrics.

The index lives in ``MODEL/index/``::

    index.json             rows, dimension, backend, corpus file and sha256, model weights
    embeddings.safetensors the corpus vectors (float32, L2-normalised)
    corpus.jsonl           per document: id, text and the corpus file's other columns
    hnsw.index             only with the ``faiss`` backend

Search is exact by default (one matrix product with numpy, then ``argpartition``: about
2 ms per query on 100,000 documents of 384 dimensions here). With ``faiss`` installed and
a corpus of ``APPROXIMATE_FROM`` documents or more, ``backend="auto"`` builds an HNSW graph
instead (approximate, sub-linear). The index is written to a temporary folder and renamed
into place, so a crash never leaves half an index.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import ConfigError, DataError, DomainfitError, Problem

__all__ = ["build_index", "Index", "Hit", "mine_hard_negatives", "score_pairs", "APPROXIMATE_FROM", "BACKENDS"]

APPROXIMATE_FROM = 200_000
BACKENDS = ("auto", "exact", "faiss")
INDEX_DIR = "index"


@dataclass
class Hit:
    """One search result."""

    id: str
    score: float
    text: str
    fields: dict

    def to_dict(self) -> dict:
        return {"id": self.id, "score": round(self.score, 6), "text": self.text, **self.fields}


def embed_texts(model, tokenizer, texts: list[str], max_length: int, batch_size: int = 128) -> np.ndarray:
    """Normalised embeddings ``(n, dim)`` (float32) in input order."""
    from .data.batching import encode_texts
    from .training.loop import predict_logits

    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    encoded = encode_texts(tokenizer, list(texts), None, max_length)
    vectors = predict_logits(model, encoded, tokenizer.pad_token_id, batch_size, embeddings=True)
    return torch.nn.functional.normalize(vectors.float(), dim=-1).numpy()


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` best columns per row, best first."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(scores, part, axis=1).argsort(axis=1)[:, ::-1]
    return np.take_along_axis(part, order, axis=1)


def mine_hard_negatives(model, tokenizer, examples: list, count: int, max_length: int) -> None:
    """Give each example the ``count`` documents the (untuned) model ranks highest among the
    other examples' positives, skipping its own positive (and equal texts)."""
    docs = list(dict.fromkeys((e.text_pair or "").strip() for e in examples))
    if len(docs) <= count:
        raise ConfigError(f"data.hard_negatives={count} needs more than {count} different positive documents; "
                          f"the training data has {len(docs)}.")
    doc_vectors = embed_texts(model, tokenizer, docs, max_length)
    query_vectors = embed_texts(model, tokenizer, [e.text for e in examples], max_length)
    ranked = _top_k(query_vectors @ doc_vectors.T, count + 1)
    for example, row in zip(examples, ranked):
        own = (example.text_pair or "").strip()
        example.negatives = [docs[j] for j in row if docs[j] != own][:count]


def _relevance(positive: str, ids: dict[str, int], texts: dict[str, int]) -> set[int] | None:
    """Corpus rows a label points to: ids (``a|b`` or a JSON list), else an exact text."""
    value = positive.strip()
    parts = json.loads(value) if value.startswith("[") else value.split("|")
    found = {ids[str(p).strip()] for p in parts if str(p).strip() in ids}
    if found:
        return found
    return {texts[value]} if value in texts else None


def score_pairs(model, tokenizer, examples: list, max_length: int, index: Index | None = None,
                reranker=None, candidates: int = 20) -> tuple[dict, list[dict], torch.Tensor]:
    """Ranking metrics for (query, positive) examples.

    With an ``index``, the positive names relevant corpus ids (``a|b`` for several) or a
    document's exact text; without one, the corpus is the examples' distinct positives.
    """
    from .tasks.retrieval import RetrievalTask

    if index is None:
        docs = list(dict.fromkeys((e.text_pair or "").strip() for e in examples))
        index = Index.from_vectors(embed_texts(model, tokenizer, docs, max_length), docs,
                                   [str(i) for i in range(len(docs))], model=model, tokenizer=tokenizer,
                                   max_length=max_length)
    index._embedder = (model, tokenizer, max_length)
    ids = {doc_id: n for n, doc_id in enumerate(index.ids)}
    texts = {t.strip(): n for n, t in enumerate(index.texts)}
    relevant, problems = [], []
    for e in examples:
        rel = _relevance(e.text_pair or "", ids, texts)
        if rel is None:
            problems.append(Problem("<eval data>", e.line, None, f"the positive {str(e.text_pair)[:60]!r} is neither "
                                    "an id nor the text of a document in the index"))
        relevant.append(rel or set())
    if problems:
        raise DataError(problems, hint="Give corpus ids (several as a|b) or exact document texts.")
    depth = max(10, candidates if reranker is not None else 10)
    rows = index.search_rows([e.text for e in examples], depth)
    if reranker is not None:
        rows = [_rerank_rows(reranker, e.text, row, index, candidates) for e, row in zip(examples, rows)]
    preds = [{"ranking": [index.ids[j] for j, _ in row[:10]], "relevant": [index.ids[j] for j in rel]}
             for row, rel in zip(rows, relevant)]
    return RetrievalTask().metrics(None, preds, None, None), preds, torch.empty(0)


def _rerank_rows(reranker, query: str, row: list[tuple[int, float]], index: Index, candidates: int):
    top = row[:candidates]
    scores = reranker.pair_scores([query] * len(top), [index.texts[j] for j, _ in top])
    order = sorted(range(len(top)), key=lambda i: -scores[i])
    return [(top[i][0], float(scores[i])) for i in order] + row[candidates:]


class Index:
    """Document vectors plus their ids and texts; searchable by a query embedding."""

    def __init__(self, vectors: np.ndarray, texts: list[str], ids: list[str], fields: list[dict] | None = None,
                 meta: dict | None = None, ann: Any = None):
        self.vectors = vectors
        self.texts = texts
        self.ids = ids
        self.fields = fields or [{} for _ in ids]
        self.meta = meta or {}
        self.ann = ann
        self._embedder = None

    @classmethod
    def from_vectors(cls, vectors, texts, ids, *, model=None, tokenizer=None, max_length=128) -> Index:
        index = cls(vectors, texts, ids)
        index._embedder = (model, tokenizer, max_length)
        return index

    def __len__(self) -> int:
        return len(self.ids)

    def search_vectors(self, queries: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """Per query, ``k`` ``(row, score)`` pairs, best first."""
        if self.ann is not None:
            self.ann.hnsw.efSearch = max(64, 2 * k)
            scores, rows = self.ann.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, len(self)))
            return [[(int(r), float(s)) for r, s in zip(rr, ss) if r >= 0] for rr, ss in zip(rows, scores)]
        out = []
        for start in range(0, len(queries), 256):  # bounded memory: 256 queries × corpus at a time
            scores = queries[start:start + 256] @ self.vectors.T
            top = _top_k(scores, k)
            out += [[(int(j), float(scores[i, j])) for j in row] for i, row in enumerate(top)]
        return out

    def search_rows(self, queries: list[str], k: int) -> list[list[tuple[int, float]]]:
        model, tokenizer, max_length = self._embedder
        return self.search_vectors(embed_texts(model, tokenizer, queries, max_length), k)


def read_corpus(corpus: Any, text_column: str, id_column: str | None) -> tuple[list[str], list[str], list[dict]]:
    """Read a corpus file: texts, ids (the id column, else the row's line number) and the
    other columns of each row. Empty texts and duplicate ids are errors, with lines."""
    from .data import read_rows
    from .data._labels import to_text

    texts, ids, fields, problems = [], [], [], []
    seen: dict[str, int] = {}
    for line, row in read_rows(corpus):
        if text_column not in row:
            raise DataError([Problem(str(corpus), None, text_column, f"there is no text column named "
                                     f"'{text_column}'; the columns are {', '.join(map(repr, row))}; choose one "
                                     "with --text-column")])
        if id_column is not None and id_column not in row:
            raise DataError([Problem(str(corpus), None, id_column, f"there is no id column named '{id_column}'; "
                                     f"the columns are {', '.join(map(repr, row))}; choose one with --id-column")])
        try:
            text = to_text(row.get(text_column))
        except ValueError as exc:
            problems.append(Problem(str(corpus), line, text_column, str(exc)))
            continue
        doc_id = str(row.get(id_column)).strip() if id_column is not None and row.get(id_column) is not None \
            else ("" if id_column is not None else str(line))
        if not text.strip():
            problems.append(Problem(str(corpus), line, text_column, "the document text is missing or empty"))
        if not doc_id:
            problems.append(Problem(str(corpus), line, id_column, "the document id is missing"))
        elif doc_id in seen:
            problems.append(Problem(str(corpus), line, id_column,
                                    f"the id '{doc_id}' is used twice (first on line {seen[doc_id]}); ids must be unique"))
        else:
            seen[doc_id] = line
        texts.append(text)
        ids.append(doc_id)
        fields.append({k: v for k, v in row.items() if k not in (text_column, id_column)})
    if problems:
        raise DataError(problems)
    return texts, ids, fields


def build_index(model_path: str | Path, corpus: Any, *, text_column: str = "text", id_column: str | None = "id",
                backend: str = "auto", batch_size: int = 128) -> Path:
    """Embed a corpus with a retrieval artifact and store the index in ``MODEL/index/``.

    Args:
        model_path: a ``retrieval`` artifact.
        corpus: a CSV/TSV/JSONL/Parquet file (or rows) with a text column and, ideally, an
            id column; without ``id_column`` ids are the rows' line numbers.
        backend: ``exact`` (numpy), ``faiss`` (HNSW, needs ``faiss-cpu``) or ``auto`` (faiss
            when installed and the corpus has at least ``APPROXIMATE_FROM`` documents).

    Returns:
        The index folder.
    """
    from .data.loading import file_sha256
    from .inference import Predictor
    from .ui import say

    if backend not in BACKENDS:
        raise ConfigError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}.")
    predictor = Predictor(model_path)
    if predictor.task.name != "retrieval":
        raise DomainfitError(f"{model_path} is a {predictor.task.name} model; an index needs a retrieval model "
                             "(domainfit train --task retrieval ...).")
    texts, ids, fields = read_corpus(corpus, text_column, id_column)
    long = predictor.long_texts(texts)
    if long:
        say(f"[yellow]warning:[/] {len(long)} document(s) are longer than {predictor.max_length} tokens and are "
            f"embedded from their beginning (rows {', '.join(map(str, long[:10]))}{' ...' if len(long) > 10 else ''})")
    say(f"Embedding {len(texts):,} documents...")
    vectors = predictor.embed(texts, batch_size=batch_size)
    use_faiss = backend == "faiss" or (backend == "auto" and len(texts) >= APPROXIMATE_FROM and _has_faiss())
    if backend == "faiss" and not _has_faiss():
        raise ConfigError("--backend faiss needs the faiss-cpu package: pip install faiss-cpu")
    path = Path(model_path)
    staging = Path(tempfile.mkdtemp(prefix=".index.tmp-", dir=path))
    try:
        from safetensors.numpy import save_file

        save_file({"embeddings": np.ascontiguousarray(vectors, dtype=np.float32)}, str(staging / "embeddings.safetensors"))
        with (staging / "corpus.jsonl").open("w", encoding="utf-8") as f:
            for doc_id, text, extra in zip(ids, texts, fields):
                f.write(json.dumps({"id": doc_id, "text": text, "fields": extra}, ensure_ascii=False, default=str) + "\n")
        if use_faiss:
            import faiss

            graph = faiss.IndexHNSWFlat(vectors.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
            graph.hnsw.efConstruction = 128
            graph.add(np.ascontiguousarray(vectors, dtype=np.float32))
            faiss.write_index(graph, str(staging / "hnsw.index"))
        source = str(corpus) if isinstance(corpus, (str, os.PathLike)) else "<records>"
        meta = {"rows": len(ids), "dim": int(vectors.shape[1]), "backend": "faiss" if use_faiss else "exact",
                "corpus": source, "corpus_sha256": file_sha256(Path(corpus)) if source != "<records>" else None,
                "text_column": text_column, "id_column": id_column}
        (staging / "index.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        target = path / INDEX_DIR
        old = path / f".index.old-{os.getpid()}"
        if target.exists():
            os.replace(target, old)
        os.replace(staging, target)
        shutil.rmtree(old, ignore_errors=True)
        return target
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _has_faiss() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def load_index(model_path: str | Path) -> Index | None:
    """The artifact's index, or None when it has none."""
    from safetensors.numpy import load_file

    folder = Path(model_path) / INDEX_DIR
    if not (folder / "index.json").is_file():
        return None
    meta = json.loads((folder / "index.json").read_text(encoding="utf-8"))
    vectors = load_file(str(folder / "embeddings.safetensors"))["embeddings"]
    ids, texts, fields = [], [], []
    with (folder / "corpus.jsonl").open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            ids.append(row["id"])
            texts.append(row["text"])
            fields.append(row.get("fields", {}))
    ann = None
    if meta.get("backend") == "faiss":
        if not _has_faiss():
            raise DomainfitError(f"{model_path}'s index was built with faiss; install faiss-cpu, or rebuild it with "
                                 "domainfit index MODEL --corpus FILE --backend exact")
        import faiss

        ann = faiss.read_index(str(folder / "hnsw.index"))
    return Index(vectors, texts, ids, fields, meta, ann)
