"""``domainfit audit``: which labels of a training file are probably wrong?

1. **Out-of-fold probabilities**: every row is scored by a model that did not see it.
   ``fast`` (default): the encoder's text vectors, computed once and kept frozen, and a
   logistic-regression head trained per fold (its regularisation chosen on one inner split
   of the training data). ``full``: a domainfit model fine-tuned per fold (slower, sharper).
2. **Confident learning** (Northcutt, Jiang & Chuang, JAIR 2021), written here from the
   paper: per-class thresholds (the mean probability of a class among the rows labelled
   with it), the confident joint of given and likely-true labels, calibrated to the label
   counts, and "prune by noise rate": for each (given i, true j) cell, the estimated number
   of rows labelled i that are really j, taken from those with the largest margin
   ``p_j − p_i``. Each flagged row's score is its self-confidence ``p(given label)``: lower
   is more suspicious; its suggestion is the most probable label.
3. **Near-duplicates with different labels**: texts whose vectors have cosine similarity at
   least ``duplicate_threshold`` (or that are equal after case and space folding) but carry
   different labels.

Writes ``label_issues.csv`` (line, text, given_label, suggested_label, score; most
suspicious first), ``near_duplicates.csv`` and ``audit.json``.
"""

from __future__ import annotations

import csv
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import ConfigError
from ..core.io import atomic_file
from ..core.ui import say

__all__ = ["AuditResult", "audit", "confident_learning", "out_of_fold", "near_duplicates", "read_labelled",
           "fold_text"]

MODES = ("fast", "full")


@dataclass
class AuditResult:
    rows: int
    flagged: list[int]  # 0-based row positions, most suspicious first
    suggested: list[str]
    scores: list[float]
    duplicates: list[dict]
    out_of_fold_accuracy: float
    mode: str
    output: Path | None = None
    probabilities: np.ndarray | None = None  # (rows, classes) out-of-fold
    classes: list[str] | None = None


def fold_text(text: str) -> str:
    """A text with case and runs of whitespace folded: how repeats are recognised (near-
    duplicates here, repeats in an active-learning pool, corrections of a replayed row)."""
    return " ".join(text.lower().split())


def read_labelled(path: str | Path, text_column: str = "text", label_column: str = "label", min_labels: int = 2):
    """``(lines, texts, labels)`` of the rows with both a text and a label.

    Raises:
        ConfigError: no such file, a missing column, or fewer than ``min_labels`` labels.
    """
    from ..data import read_rows

    if not Path(path).is_file():
        raise ConfigError(f"{path}: no such file")
    lines, texts, labels, columns = [], [], [], set()
    for line, row in read_rows(str(path)):
        columns |= set(row)
        text, label = row.get(text_column), row.get(label_column)
        if isinstance(text, str) and text.strip() and label not in (None, ""):
            lines.append(line)
            texts.append(text)
            labels.append(str(label))
    for column in (text_column, label_column):
        if column not in columns:
            raise ConfigError(f"{path} has no column '{column}' (name it with --text-column / --label-column).")
    if not labels:
        raise ConfigError(f"{path} has no row with both a text and a label.")
    if len(set(labels)) < min_labels:
        raise ConfigError(f"{path} has {len(set(labels))} label(s) among {len(labels)} labelled rows; an audit "
                          "compares labels, so it needs at least two.")
    return lines, texts, labels


def confident_learning(given: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose given label is probably wrong (boolean mask) and every row's self-confidence.

    Args:
        given: ``(n,)`` label indices. probs: ``(n, k)`` out-of-fold probabilities.
    """
    n, k = probs.shape
    counts = np.bincount(given, minlength=k)
    thresholds = np.array([probs[given == j, j].mean() if counts[j] else 1.0 for j in range(k)])
    above = probs >= thresholds - 1e-6
    masked = np.where(above, probs, -1.0)
    likely = masked.argmax(1)
    confident = above.any(1)
    joint = np.zeros((k, k))
    np.add.at(joint, (given[confident], likely[confident]), 1)
    # Calibrate: each row of the joint sums to the count of its given label.
    row_sums = joint.sum(1, keepdims=True)
    joint = np.where(row_sums > 0, joint / np.maximum(row_sums, 1) * counts[:, None], 0.0)
    flagged = np.zeros(n, dtype=bool)
    for i in range(k):
        rows = np.flatnonzero(given == i)
        if len(rows) <= 1:
            continue
        for j in range(k):
            if i == j:
                continue
            take = int(round(joint[i, j]))
            if take <= 0:
                continue
            take = min(take, len(rows) - 1)  # never empty a class
            margin = probs[rows, j] - probs[rows, i]
            flagged[rows[np.argsort(-margin)[:take]]] = True
    # A row the model itself predicts with its given label is not flagged.
    flagged &= probs.argmax(1) != given
    return flagged, probs[np.arange(n), given]


def _folds(labels: np.ndarray, folds: int, seed: int):
    from sklearn.model_selection import KFold, StratifiedKFold

    smallest = np.bincount(labels).min()
    if smallest >= 2:
        return StratifiedKFold(n_splits=min(folds, int(smallest)), shuffle=True, random_state=seed).split(
            np.zeros(len(labels)), labels)
    return KFold(n_splits=folds, shuffle=True, random_state=seed).split(np.zeros(len(labels)))


def encode(texts: list[str], model: str = "default", batch_size: int = 128) -> np.ndarray:
    """L2-normalised text vectors from a base encoder (``default``, a folder or a hub id) or
    from a domainfit model folder."""
    from ..artifact import is_artifact

    if is_artifact(model):
        from ..inference import Predictor

        return Predictor(model).embed(texts, batch_size=batch_size)
    from transformers import AutoTokenizer

    from ..artifact import load_encoder
    from ..modeling import build_task_model, resolve_model
    from ..modeling.predict import embed_texts

    base = resolve_model(model)
    tokenizer = AutoTokenizer.from_pretrained(str(base.path))
    encoder = build_task_model("embedding", load_encoder(base.path), 0)
    encoder.eval()
    return embed_texts(encoder, tokenizer, texts, 128, batch_size)


def out_of_fold(texts: list[str], labels: list[str], *, mode: str = "fast", model: str = "default",
                folds: int = 5, seed: int = 0, vectors: np.ndarray | None = None,
                train_settings: dict | None = None) -> tuple[np.ndarray, list[str], np.ndarray | None]:
    """``(probabilities (n, k), classes, vectors)``: each row scored by a model trained on the
    other folds. ``vectors`` may be passed in (fast mode) to skip encoding."""
    classes = sorted(set(labels))
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[label] for label in labels])
    probs = np.zeros((len(texts), len(classes)), dtype=np.float64)
    splits = list(_folds(y, folds, seed))
    if mode == "fast":
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import log_loss

        if vectors is None:
            say(f"Encoding {len(texts):,} texts with {model}...")
            vectors = encode(texts, model)
        train0, held0 = splits[0]
        best_c, best_loss = 1.0, np.inf
        for c in (1.0, 10.0, 100.0):  # chosen on one split of the training data
            clf = LogisticRegression(C=c, max_iter=2000).fit(vectors[train0], y[train0])
            p = np.zeros((len(held0), len(classes)))
            p[:, clf.classes_] = clf.predict_proba(vectors[held0])
            loss = log_loss(y[held0], np.clip(p, 1e-12, 1), labels=list(range(len(classes))))
            if loss < best_loss:
                best_c, best_loss = c, loss
        for n, (train_rows, held) in enumerate(splits, 1):
            say(f"Fold {n}/{len(splits)}: a head on {len(train_rows):,} rows (C {best_c:g}) scores {len(held):,}")
            clf = LogisticRegression(C=best_c, max_iter=2000).fit(vectors[train_rows], y[train_rows])
            probs[np.ix_(held, clf.classes_)] = clf.predict_proba(vectors[held])
        return probs, classes, vectors
    if mode != "full":
        raise ConfigError(f"--mode {mode!r}: choose fast or full.")
    from ..inference import Predictor
    from ..run import train

    with tempfile.TemporaryDirectory(prefix="domainfit-audit-") as tmp:
        for n, (train_rows, held) in enumerate(splits, 1):
            say(f"Fold {n}/{len(splits)}: fine-tuning on {len(train_rows):,} rows, scoring {len(held):,}")
            out = Path(tmp) / f"fold{n}"
            train(data=[{"text": texts[i], "label": labels[i]} for i in train_rows], output=str(out), model=model,
                  **{"training.seed": seed, **(train_settings or {})})
            predictor = Predictor(out)
            columns = [index[c] for c in predictor.labels]
            probs[np.ix_(held, columns)] = predictor.predict_proba([texts[i] for i in held])
    return probs, classes, None


def near_duplicates(texts: list[str], labels: list[str], vectors: np.ndarray | None,
                    threshold: float = 0.95, block: int = 1024) -> list[dict]:
    """Pairs of rows that say (almost) the same with different labels: equal after folding
    case and spaces, or cosine similarity ≥ ``threshold`` between their vectors."""
    pairs: dict[tuple[int, int], float] = {}
    folded: dict[str, int] = {}
    for i, text in enumerate(texts):
        key = fold_text(text)
        if key in folded and labels[folded[key]] != labels[i]:
            pairs[(folded[key], i)] = 1.0
        folded.setdefault(key, i)
    if vectors is not None and len(vectors):
        y = np.array(labels)
        for start in range(0, len(vectors), block):
            sims = vectors[start:start + block] @ vectors.T
            rows, cols = np.nonzero(sims >= threshold)
            for r, c in zip(rows, cols):
                a = start + int(r)
                if a < c and y[a] != y[c]:
                    pairs.setdefault((a, int(c)), float(sims[r, c]))
    return [{"a": a, "b": b, "similarity": s} for (a, b), s in sorted(pairs.items(), key=lambda kv: -kv[1])]


def audit(data: str | Path, output: str | Path, *, model: str = "default", folds: int = 5, mode: str = "fast",
          text_column: str = "text", label_column: str = "label", duplicate_threshold: float = 0.95,
          seed: int = 0, train_settings: dict | None = None) -> AuditResult:
    """Audit the labels of ``data`` and write the reports to ``output`` (see the module docstring).

    Raises:
        ConfigError: a bad file, column, mode or fold count.
    """
    if mode not in MODES:
        raise ConfigError(f"--mode {mode!r}: choose fast or full.")
    if folds < 2:
        raise ConfigError(f"--folds must be at least 2, not {folds}.")
    lines, texts, labels = read_labelled(data, text_column, label_column)
    probs, classes, vectors = out_of_fold(texts, labels, mode=mode, model=model, folds=folds, seed=seed,
                                          train_settings=train_settings)
    if vectors is None:  # full mode: vectors of the base encoder for the near-duplicates
        vectors = encode(texts, model)
    index = {c: i for i, c in enumerate(classes)}
    given = np.array([index[label] for label in labels])
    flagged_mask, quality = confident_learning(given, probs)
    order = sorted(np.flatnonzero(flagged_mask), key=lambda i: quality[i])
    suggested = [classes[int(probs[i].argmax())] for i in order]
    duplicates = near_duplicates(texts, labels, vectors, duplicate_threshold)
    oof_accuracy = float((probs.argmax(1) == given).mean())

    folder = Path(output)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_file(folder / "label_issues.csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["line", "text", "given_label", "suggested_label", "score"])
        for i, label in zip(order, suggested):
            writer.writerow([lines[i], texts[i], labels[i], label, f"{quality[i]:.4f}"])
    with atomic_file(folder / "near_duplicates.csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["line_a", "line_b", "text_a", "text_b", "label_a", "label_b", "similarity"])
        for d in duplicates:
            a, b = d["a"], d["b"]
            writer.writerow([lines[a], lines[b], texts[a], texts[b], labels[a], labels[b], f"{d['similarity']:.4f}"])
    summary = {"data": str(data), "rows": len(texts), "labels": len(classes), "mode": mode, "model": str(model),
               "folds": folds, "out_of_fold_accuracy": oof_accuracy, "flagged": len(order),
               "near_duplicate_pairs": len(duplicates), "duplicate_threshold": duplicate_threshold, "seed": seed}
    with atomic_file(folder / "audit.json") as tmp:
        Path(tmp).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return AuditResult(len(texts), [int(i) for i in order], suggested, [float(quality[i]) for i in order],
                       duplicates, oof_accuracy, mode, folder, probs, classes)
