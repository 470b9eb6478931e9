"""A corpus's search index, stored inside a retrieval artifact.

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import DataError, DomainfitError, Problem
from ..core.io import inside
from ..tasks.retrieval import Corpus

__all__ = ["load_index", "read_corpus", "Index", "Hit", "APPROXIMATE_FROM", "BACKENDS", "INDEX_DIR", "has_faiss"]

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


class Index(Corpus):
    """A corpus index stored in an artifact: document vectors, ids, texts and the corpus's
    other columns; exact search, or an HNSW graph (``ann``) built with faiss.

    Args:
        embed: ``fn(texts) -> (n, dim)`` normalised query vectors (the artifact's model).
    """

    def __init__(self, vectors: np.ndarray, texts: list[str], ids: list[str], fields: list[dict] | None = None,
                 meta: dict | None = None, ann: Any = None, embed: Callable[[list[str]], np.ndarray] | None = None):
        super().__init__(vectors, texts, ids, embed)
        self.fields = fields or [{} for _ in ids]
        self.meta = meta or {}
        self.ann = ann

    def search_vectors(self, queries: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """Per query, ``k`` ``(row, score)`` pairs, best first."""
        if self.ann is None:
            return super().search_vectors(queries, k)
        self.ann.hnsw.efSearch = max(64, 2 * k)
        scores, rows = self.ann.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, len(self)))
        return [[(int(r), float(s)) for r, s in zip(rr, ss) if r >= 0] for rr, ss in zip(rows, scores)]


def read_corpus(corpus: Any, text_column: str, id_column: str | None) -> tuple[list[str], list[str], list[dict]]:
    """Read a corpus file: texts, ids (the id column, else the row's line number) and the
    other columns of each row. Empty texts and duplicate ids are errors, with lines."""
    from ..data import read_rows, to_text

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


def has_faiss() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def load_index(model_path: str | Path, embed: Callable[[list[str]], np.ndarray] | None = None) -> Index | None:
    """The artifact's index, or None when it has none; ``embed`` embeds queries (the
    artifact's model, e.g. ``Predictor.embed``)."""
    from safetensors.numpy import load_file

    if not (Path(model_path) / INDEX_DIR / "index.json").is_file():
        return None
    folder = inside(model_path, INDEX_DIR)  # never a link out of the model folder
    meta = json.loads(inside(folder, "index.json").read_text(encoding="utf-8"))
    vectors = load_file(str(inside(folder, "embeddings.safetensors")))["embeddings"]
    ids, texts, fields = [], [], []
    with inside(folder, "corpus.jsonl").open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            ids.append(row["id"])
            texts.append(row["text"])
            fields.append(row.get("fields", {}))
    ann = None
    if meta.get("backend") == "faiss":
        if not has_faiss():
            raise DomainfitError(f"{model_path}'s index was built with faiss; install faiss-cpu, or rebuild it with "
                                 "domainfit index MODEL --corpus FILE --backend exact")
        import faiss

        ann = faiss.read_index(str(inside(folder, "hnsw.index")))
    return Index(vectors, texts, ids, fields, meta, ann, embed)
