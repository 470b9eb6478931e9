"""Evidence for a prediction: the training examples most like the text, with their labels.

At the end of training, the model's own pooled text vectors of the training examples are
stored in the artifact (``evidence.safetensors``: float16, L2-normalised; ``evidence.jsonl``:
text, pair text, label per row), at most :data:`MAX_ROWS` of them (a seeded sample beyond).
``domainfit train --no-evidence-index`` (``training.evidence_index: false``) leaves them out,
e.g. for private training data: the texts are then not in the model folder.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["MAX_ROWS", "VECTORS", "ROWS", "Evidence", "build_evidence"]

MAX_ROWS = 20_000
VECTORS, ROWS = "evidence.safetensors", "evidence.jsonl"


@dataclass
class Evidence:
    vectors: np.ndarray  # (n, hidden) float16, L2-normalised
    rows: list[dict]     # {"text", "label"[, "pair"]}

    def save(self, folder: str | Path) -> None:
        from safetensors.numpy import save_file

        folder = Path(folder)
        save_file({"vectors": np.ascontiguousarray(self.vectors.astype(np.float16))}, str(folder / VECTORS))
        with open(folder / ROWS, "w", encoding="utf-8") as fh:
            for row in self.rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> Evidence | None:
        """The folder's evidence, or None where it was left out."""
        from safetensors.numpy import load_file

        folder = Path(folder)
        if not (folder / VECTORS).is_file() or not (folder / ROWS).is_file():
            return None
        vectors = load_file(str(folder / VECTORS))["vectors"]
        rows = [json.loads(line) for line in (folder / ROWS).read_text(encoding="utf-8").splitlines() if line]
        return cls(vectors, rows)

    def nearest(self, queries: np.ndarray, k: int) -> list[list[dict]]:
        """Per query vector, the ``k`` most similar stored examples: their row plus
        ``similarity`` (cosine), most similar first."""
        if k < 1 or len(self.rows) == 0:
            return [[] for _ in range(len(queries))]
        sims = queries.astype(np.float32) @ self.vectors.astype(np.float32).T
        k = min(k, sims.shape[1])
        best = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        out = []
        for q, row in enumerate(best):
            ranked = sorted(row, key=lambda j: -sims[q, j])
            out.append([{**self.rows[j], "similarity": round(float(sims[q, j]), 4)} for j in ranked])
        return out


def build_evidence(model, tokenizer, examples: list, max_length: int, seed: int = 0) -> Evidence | None:
    """The evidence of the labelled ``examples`` (a seeded sample of :data:`MAX_ROWS` beyond
    that), from ``model``'s pooled vectors; None when there is nothing to store."""
    seen: set = set()
    labelled = []
    for e in examples:  # each distinct (text, pair, label) once: repeats would fill the k places
        key = (e.text, e.text_pair, str(e.label))
        if e.label is not None and e.text and key not in seen:
            seen.add(key)
            labelled.append(e)
    if not labelled or not hasattr(model, "embed"):
        return None
    if len(labelled) > MAX_ROWS:
        labelled = random.Random(seed).sample(labelled, MAX_ROWS)
    pairs = [e.text_pair or "" for e in labelled] if any(e.text_pair for e in labelled) else None
    from ..modeling.predict import embed_texts

    vectors = embed_texts(model, tokenizer, [e.text for e in labelled], max_length, pairs=pairs)
    rows = []
    for e in labelled:
        label = "|".join(e.label) if isinstance(e.label, (list, tuple)) else e.label
        rows.append({"text": e.text, **({"pair": e.text_pair} if e.text_pair else {}), "label": label})
    return Evidence(vectors.astype(np.float16), rows)
