"""Building a retrieval artifact's search index from a corpus (``domainfit index``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ConfigError, DomainfitError
from ..core.io import staged_folder
from .predictor import Predictor
from .search import APPROXIMATE_FROM, BACKENDS, INDEX_DIR, has_faiss, read_corpus

__all__ = ["build_index"]


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
    from ..core.ui import say
    from ..data import file_sha256

    if backend not in BACKENDS:
        raise ConfigError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}.")
    predictor = Predictor(model_path)
    if predictor.task.model_kind != "embedding":  # only an embedding model's vectors are comparable
        raise DomainfitError(f"{model_path} is a {predictor.task.name} model; an index needs a retrieval model "
                             "(domainfit train --task retrieval ...).")
    texts, ids, fields = read_corpus(corpus, text_column, id_column)
    long = predictor.long_texts(texts)
    if long:
        say(f"[yellow]warning:[/] {len(long)} document(s) are longer than {predictor.max_length} tokens and are "
            f"embedded from their beginning (rows {', '.join(map(str, long[:10]))}{' ...' if len(long) > 10 else ''})")
    say(f"Embedding {len(texts):,} documents...")
    vectors = predictor.embed(texts, batch_size=batch_size)
    use_faiss = backend == "faiss" or (backend == "auto" and len(texts) >= APPROXIMATE_FROM and has_faiss())
    if backend == "faiss" and not has_faiss():
        raise ConfigError("--backend faiss needs the faiss-cpu package: pip install faiss-cpu")
    path = Path(model_path)
    with staged_folder(path / INDEX_DIR) as staging:
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
    return path / INDEX_DIR
