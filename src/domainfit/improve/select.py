"""``domainfit select``: which unlabelled texts should a person label next?

Strategies, over the model's probabilities and text vectors of the pool:

* ``margin`` (default): the smallest gap between the two most probable labels
  (uncertainty); works for every artifact, ONNX included. On Banking77
  (``benchmarks/active_learning.py``) it and ``hybrid`` reach random picks' accuracy at
  3,000 labels with 1,500; ``hybrid`` is ahead in the first rounds.
* ``entropy``: the most spread-out probabilities (uncertainty).
* ``diverse``: greedy core-set (k-centre): each pick is the pool text farthest from
  everything labelled or picked so far, so that the picks cover the pool.
* ``hybrid`` (cluster-margin): the ``3 × budget`` most uncertain texts by margin are grouped
  into ``budget`` k-means clusters and each cluster gives its most uncertain text, so that
  near-repeats of one confusing question do not fill the whole batch.

A text is picked at most once: exact repeats in the pool (after folding case and spaces) and
texts of ``exclude`` (already labelled) are never picked. The picks come with the model's
current guess, so that a labeller confirms or corrects instead of starting from nothing.
Label Studio's JSON task format is written and read beside plain CSV.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import ConfigError
from ..core.io import atomic_file
from .audit import fold_text

__all__ = ["STRATEGIES", "Selection", "choose", "select", "write_picks", "read_labelstudio"]

STRATEGIES = ("margin", "entropy", "diverse", "hybrid")


@dataclass
class Selection:
    rows: list[int]  # positions in the pool, in pick order
    guesses: list[str]
    scores: list[float]  # the guess's probability
    strategy: str


def _core_set(vectors: np.ndarray, candidates: np.ndarray, anchors: np.ndarray | None, budget: int,
              seed: int = 0) -> list[int]:
    """Greedy k-centre over ``candidates`` (indices into ``vectors``): each pick maximises the
    distance to the anchors and the picks before it."""
    if budget <= 0 or len(candidates) == 0:
        return []
    cand = vectors[candidates]
    count = min(budget, len(candidates))
    if anchors is not None and len(anchors):
        nearest = np.full(len(candidates), np.inf)
        for begin in range(0, len(anchors), 2048):
            sims = cand @ vectors[anchors[begin:begin + 2048]].T
            nearest = np.minimum(nearest, (2 - 2 * sims).min(1))
        picks: list[int] = []
    else:  # nothing labelled yet: start from a seeded random text
        first = int(np.random.default_rng(seed).integers(len(candidates)))
        picks = [first]
        nearest = 2 - 2 * (cand @ cand[first])
        nearest[first] = -np.inf
    while len(picks) < count:
        best = int(np.argmax(nearest))
        picks.append(best)
        nearest = np.minimum(nearest, 2 - 2 * (cand @ cand[best]))
        nearest[best] = -np.inf
    return [int(candidates[p]) for p in picks]


def _check_budget(budget: int, available: int) -> None:
    if budget < 1:
        raise ConfigError(f"--budget must be at least 1, not {budget}.")
    if available == 0:
        raise ConfigError("the pool has no text left to pick (all are labelled already, or it is empty).")
    if budget > available:
        raise ConfigError(f"--budget {budget} is larger than the {available} texts that can be picked (repeats and "
                          "texts already labelled are left out).")


def choose(probs: np.ndarray, vectors: np.ndarray | None, budget: int, strategy: str = "margin",
           eligible: np.ndarray | None = None, labelled_vectors: np.ndarray | None = None,
           seed: int = 0) -> list[int]:
    """The pool positions to label next, best first.

    Args:
        probs: ``(n, k)`` the model's probabilities of the pool. vectors: ``(n, d)``
            L2-normalised text vectors (``diverse`` and ``hybrid``).
        eligible: the positions that may be picked (default: all).
        labelled_vectors: vectors of what is labelled already (``diverse`` keeps away from them).
    """
    if strategy not in STRATEGIES:
        raise ConfigError(f"--strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}.")
    eligible = np.arange(len(probs)) if eligible is None else np.asarray(eligible)
    _check_budget(budget, len(eligible))
    p = probs[eligible]
    top2 = np.sort(p, axis=1)[:, -2:] if p.shape[1] > 1 else np.concatenate([np.zeros_like(p), p], 1)
    margin = top2[:, 1] - top2[:, 0]
    if strategy == "margin":
        return [int(eligible[i]) for i in np.argsort(margin, kind="stable")[:budget]]
    if strategy == "entropy":
        entropy = -(p * np.log(np.clip(p, 1e-12, 1))).sum(1)
        return [int(eligible[i]) for i in np.argsort(-entropy, kind="stable")[:budget]]
    if vectors is None:
        raise ConfigError(f"the {strategy} strategy needs text vectors (a torch model).")
    if strategy == "hybrid":
        return _cluster_margin(vectors, eligible[np.argsort(margin, kind="stable")], budget, seed)
    if labelled_vectors is not None and len(labelled_vectors):
        all_vectors = np.concatenate([vectors, labelled_vectors])
        return _core_set(all_vectors, eligible, np.arange(len(vectors), len(all_vectors)), budget, seed)
    return _core_set(vectors, eligible, None, budget, seed)


def _cluster_margin(vectors: np.ndarray, by_margin: np.ndarray, budget: int, seed: int) -> list[int]:
    """The most uncertain text of each of ``budget`` k-means clusters over the ``3 × budget``
    most uncertain texts (``by_margin``: pool positions, most uncertain first). The 3× was
    chosen on held-out Banking77 training texts (``benchmarks/active_learning.py --dev``), where
    it beat a 10× shortlist with core-set picks, and plain margin in the first rounds."""
    from sklearn.cluster import KMeans

    if budget <= 0:
        return []
    shortlist = by_margin[:3 * budget]
    if len(shortlist) <= budget:
        return [int(i) for i in shortlist]
    clusters = KMeans(n_clusters=budget, n_init=1, max_iter=100, random_state=seed).fit_predict(vectors[shortlist])
    taken: set[int] = set()
    picks: list[int] = []
    for position, cluster in zip(shortlist, clusters):  # most uncertain first: the first of a cluster is its pick
        if int(cluster) not in taken:
            taken.add(int(cluster))
            picks.append(int(position))
    chosen = set(picks)  # k-means may leave a cluster empty: fill up by margin
    picks += [int(i) for i in shortlist if int(i) not in chosen][:budget - len(picks)]
    return picks


def select(model: str | Path, pool: str | Path, budget: int, *, strategy: str = "margin",
           exclude: str | Path | None = None, text_column: str = "text", seed: int = 0):
    """Score the pool with the model and pick ``budget`` texts.

    Returns:
        ``(selection, lines, texts)``: the picks and the pool's file lines and texts.

    Raises:
        ConfigError: an empty pool, a budget larger than what can be picked, a bad strategy.
    """
    from ..data import read_rows
    from ..inference import Predictor

    def texts_of(path) -> tuple[list[int], list[str]]:
        if not Path(path).is_file():
            raise ConfigError(f"{path}: no such file")
        found = [(line, row.get(text_column)) for line, row in read_rows(str(path))]
        found = [(line, t) for line, t in found if isinstance(t, str) and t.strip()]
        return [line for line, _ in found], [t for _, t in found]

    lines, texts = texts_of(pool)
    if not texts:
        raise ConfigError(f"the pool {pool} has no texts in its column '{text_column}'.")
    excluded_texts = texts_of(exclude)[1] if exclude is not None else []
    done = {fold_text(t) for t in excluded_texts}
    seen: set[str] = set()
    eligible = []
    for i, text in enumerate(texts):
        key = fold_text(text)
        if key in done or key in seen:
            continue
        seen.add(key)
        eligible.append(i)
    predictor = Predictor(model)
    if not predictor.labels or predictor.task.needs_pair:
        raise ConfigError(f"{model} is a {predictor.task.name} model; select picks texts for label classifiers.")
    if strategy not in STRATEGIES:
        raise ConfigError(f"--strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}.")
    _check_budget(budget, len(eligible))  # before the pool is scored
    probs = predictor.predict_proba(texts)
    if probs.ndim == 1:
        raise ConfigError(f"{model} predicts values, not labels; select needs a classifier.")
    vectors = labelled = None
    if strategy in ("diverse", "hybrid") and predictor.backend == "torch":
        vectors = predictor.embed(texts)
        labelled = predictor.embed(excluded_texts) if excluded_texts else None
    elif strategy in ("diverse", "hybrid"):
        raise ConfigError(f"the {strategy} strategy needs text vectors, which an ONNX model does not give; use "
                          "margin or entropy, or the torch model.")
    rows = choose(probs, vectors, budget, strategy, np.array(eligible), labelled, seed)
    names = predictor.labels
    selection = Selection(rows, [names[int(probs[r].argmax())] for r in rows], [float(probs[r].max()) for r in rows],
                          strategy)
    return selection, lines, texts


def write_picks(selection: Selection, lines: list[int], texts: list[str], output: str | Path,
                fmt: str | None = None) -> Path:
    """The picks as CSV (``line,text,guess,score,rank``; ``label`` empty, for the labeller)
    or as Label Studio tasks (``.json``: ``data.text`` and the guess as a prediction)."""
    output = Path(output)
    fmt = fmt or ("labelstudio" if output.suffix == ".json" else "csv")
    output.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "labelstudio":
        tasks = [{"data": {"text": texts[r], "line": lines[r]},
                  "predictions": [{"model_version": selection.strategy, "score": score,
                                   "result": [{"from_name": "label", "to_name": "text", "type": "choices",
                                               "value": {"choices": [guess]}}]}]}
                 for r, guess, score in zip(selection.rows, selection.guesses, selection.scores)]
        with atomic_file(output) as tmp:
            Path(tmp).write_text(json.dumps(tasks, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        return output
    if fmt != "csv":
        raise ConfigError(f"--format {fmt!r}: choose csv or labelstudio.")
    with atomic_file(output) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["line", "text", "label", "guess", "score", "rank"])
        for rank, (r, guess, score) in enumerate(zip(selection.rows, selection.guesses, selection.scores), 1):
            writer.writerow([lines[r], texts[r], "", guess, f"{score:.4f}", rank])
    return output


def read_labelstudio(path: str | Path) -> list[dict]:
    """``[{"text", "label"}]`` from a Label Studio JSON export: each task's latest
    non-cancelled annotation's first choice (tasks without one are left out).

    Raises:
        ConfigError: a file that is not a Label Studio task list.
    """
    try:
        tasks = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path} is not a Label Studio JSON export: {exc}") from None
    if not isinstance(tasks, list):
        raise ConfigError(f"{path} is not a Label Studio JSON export (a list of tasks).")
    rows = []
    for n, task in enumerate(tasks):
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise ConfigError(f"{path}: task {n} has no 'data' object.")
        text = task["data"].get("text")
        annotations = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
        label = None
        for annotation in reversed(annotations):
            for result in annotation.get("result") or []:
                choices = (result.get("value") or {}).get("choices") or []
                if choices:
                    label = choices[0]
                    break
            if label is not None:
                break
        if isinstance(text, str) and label is not None:
            rows.append({"text": text, "label": label})
    return rows
