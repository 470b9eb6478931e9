"""``domainfit drift``: has what a model sees moved away from what it was built on?

A reference set of texts (typically the training or validation file) is scored by the
model; the current set is a file scored the same way, or the server's prediction log
(``--db``, from ``domainfit serve --log-predictions``), whose labels and scores are the ones
served and whose texts (kept only with ``--log-texts``) are embedded again. The checks and
the rule that calls drift are in :mod:`domainfit.evaluation.drift`; this module gathers the
inputs, runs them, and writes ``report.md``, ``drift.json`` and PNG plots.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.errors import ConfigError, DomainfitError
from ..core.io import atomic_file
from ..evaluation.drift import Signal, decide, dominant_script, ks_test, mix_test, mmd_test, rate_test

__all__ = ["TextSet", "DriftResult", "scored_set", "logged_set", "compare", "write_report", "run_drift",
           "read_texts"]


@dataclass
class TextSet:
    """One side of a comparison: texts (``None`` when the log kept none), their top labels
    and scores, and their vectors (``None`` without texts or for an ONNX model)."""

    name: str
    source: str
    labels: list[str | None]
    scores: np.ndarray
    texts: list[str] | None = None
    embeddings: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, rows: np.ndarray) -> "TextSet":
        """The rows at the given indices (for resampling)."""
        return TextSet(self.name, self.source, [self.labels[i] for i in rows], self.scores[rows],
                       None if self.texts is None else [self.texts[i] for i in rows],
                       None if self.embeddings is None else self.embeddings[rows])


@dataclass
class DriftResult:
    drift: bool
    signals: list[Signal]
    reference: dict
    current: dict
    notes: list[str] = field(default_factory=list)
    alpha: float = 0.05
    plots: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"drift": self.drift, "alpha": self.alpha, "reference": self.reference, "current": self.current,
                "signals": [s.to_dict() for s in self.signals], "notes": self.notes, "plots": self.plots}


def read_texts(path: str | Path, text_column: str = "text") -> list[str]:
    """The non-empty texts of a CSV/TSV/JSONL/Parquet file's ``text_column``.

    Raises:
        ConfigError: a missing file, a missing column, or no text at all.
    """
    from ..data import read_rows

    if not Path(path).is_file():
        raise ConfigError(f"{path}: no such file")
    texts, seen_column = [], False
    for _, row in read_rows(str(path)):
        if text_column in row:
            seen_column = True
        value = row.get(text_column)
        if isinstance(value, str) and value.strip():
            texts.append(value)
    if not seen_column:
        raise ConfigError(f"{path} has no column '{text_column}' (name the text column with --text-column).")
    if not texts:
        raise ConfigError(f"{path} has no texts in its column '{text_column}'.")
    return texts


def _answers(predictor, texts: list[str], batch_size: int) -> tuple[list, np.ndarray]:
    """Top label and score of each text, as the server would log them (the task says how)."""
    if predictor.task.needs_pair:
        raise DomainfitError(f"{predictor.path} is a pair model: drift compares single texts.")
    task, labels, scores = predictor.task, [], []
    answers = predictor.predict(texts, top_k=1, batch_size=batch_size)
    for text, answer in zip(texts, answers):
        _, label, score = task.log_fields({"text": text}, answer)
        labels.append(label)
        scores.append(np.nan if score is None else float(score))
    return labels, np.asarray(scores, dtype=float)


def _embeddings(predictor, texts: list[str], batch_size: int, notes: list[str]) -> np.ndarray | None:
    if predictor.backend != "torch":
        if "onnx" not in " ".join(notes):
            notes.append("an ONNX model gives no text vectors: the embedding check needs the torch model")
        return None
    return np.asarray(predictor.embed(texts, batch_size=batch_size), dtype=np.float32)


def scored_set(predictor, texts: list[str], name: str, source: str, batch_size: int = 64,
               notes: list[str] | None = None) -> TextSet:
    """Texts scored and embedded by the model."""
    labels, scores = _answers(predictor, texts, batch_size)
    return TextSet(name, source, labels, scores, list(texts),
                   _embeddings(predictor, texts, batch_size, notes if notes is not None else []))


def logged_set(db_url: str, model: str | None, since: _dt.datetime | None = None,
               until: _dt.datetime | None = None, predictor=None, batch_size: int = 64,
               notes: list[str] | None = None) -> TextSet:
    """The prediction log's rows of ``model`` in ``[since, until)``: served labels and scores,
    and the texts (embedded by ``predictor``) when every row kept its text.

    Raises:
        ConfigError: no logged prediction matches.
    """
    from ..stores import PredictionLog

    notes = notes if notes is not None else []
    rows = list(PredictionLog(db_url).rows(model=model, since=since, until=until))
    if not rows:
        window = f" since {since.isoformat()}" if since else ""
        raise ConfigError(f"the prediction log at {db_url} holds no predictions of model {model!r}{window} (serve with "
                        "--log-predictions, and name the served model with --served-name).")
    texts = [r.text for r in rows]
    if any(t is None for t in texts):
        notes.append("the log kept no texts (serve with --log-texts): only the label mix and the scores are compared")
        texts = None
    versions = sorted({r.version for r in rows if r.version is not None})
    source = f"{db_url} model {model}" + (f" versions {', '.join(map(str, versions))}" if versions else "")
    embeddings = _embeddings(predictor, texts, batch_size, notes) if texts is not None and predictor else None
    return TextSet("current", source, [r.label for r in rows],
                   np.asarray([np.nan if r.score is None else r.score for r in rows], dtype=float), texts, embeddings)


def compare(reference: TextSet, current: TextSet, *, alpha: float = 0.05, threshold: float | None = None,
            max_texts: int = 1000, permutations: int = 500, seed: int = 0,
            notes: list[str] | None = None) -> DriftResult:
    """Run every check the two sets allow and decide.

    Args:
        alpha: family-wise error rate (Bonferroni over the checks that ran).
        threshold: the score below which a text counts as low-confidence (e.g. a bundle's
            out-of-scope threshold); default the reference's 5th percentile.
        max_texts: the embedding check compares at most this many texts per side (a
            seeded sample), so that its cost stays bounded.
    """
    notes = list(notes or [])
    if len(reference) < 20 or len(current) < 20:
        raise ConfigError(f"drift needs at least 20 texts on each side (reference {len(reference)}, current "
                        f"{len(current)}).")
    signals: list[Signal] = []
    rng = np.random.default_rng(seed)
    if reference.embeddings is not None and current.embeddings is not None:
        def cap(x):
            return x[rng.choice(len(x), max_texts, replace=False)] if len(x) > max_texts else x
        signals.append(mmd_test(cap(reference.embeddings), cap(current.embeddings), permutations, seed))
    has_labels = all(label is not None for label in reference.labels + current.labels)
    if has_labels:
        signals.append(mix_test("prediction_mix", reference.labels, current.labels))
    ref_scores, cur_scores = reference.scores[~np.isnan(reference.scores)], current.scores[~np.isnan(current.scores)]
    if len(ref_scores) >= 20 and len(cur_scores) >= 20:
        signals.append(ks_test("confidence", ref_scores, cur_scores, what="top score"))
        cut = float(np.quantile(ref_scores, 0.05)) if threshold is None else threshold
        origin = "the reference's 5th percentile" if threshold is None else "the given threshold"
        signal = rate_test("low_confidence", ref_scores < cut, cur_scores < cut,
                           what=f"texts scored below {cut:.3f} ({origin})")
        signal.details["threshold"] = cut
        signals.append(signal)
    if reference.texts is not None and current.texts is not None:
        signals.append(ks_test("length", np.array([len(t) for t in reference.texts]),
                               np.array([len(t) for t in current.texts]), what="characters per text"))
        signals.append(mix_test("script", [dominant_script(t) for t in reference.texts],
                                [dominant_script(t) for t in current.texts], what="writing systems"))
    found = decide(signals, alpha)
    return DriftResult(found, signals, {"source": reference.source, "n": len(reference)},
                       {"source": current.source, "n": len(current)}, notes, alpha)


def write_report(result: DriftResult, reference: TextSet, current: TextSet, folder: str | Path) -> Path:
    """``report.md``, ``drift.json`` and PNG plots (label mix, scores, lengths) in ``folder``."""
    from ..evaluation.plots import plot_histograms, plot_shares

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    by_name = {s.name: s for s in result.signals}
    plots = []
    if "prediction_mix" in by_name:
        shares = by_name["prediction_mix"].details["shares"]
        plots.append(plot_shares(folder / "prediction_mix.png",
                                 [(k, v["reference"], v["current"]) for k, v in shares.items()],
                                 "Predicted labels that moved most"))
    if "confidence" in by_name:
        plots.append(plot_histograms(folder / "confidence.png", reference.scores[~np.isnan(reference.scores)],
                                     current.scores[~np.isnan(current.scores)], "Top score", "score"))
    if "length" in by_name:
        plots.append(plot_histograms(folder / "length.png", [len(t) for t in reference.texts],
                                     [len(t) for t in current.texts], "Text length", "characters"))
    result.plots = [p.name for p in plots]
    verdict = "**Drift found**" if result.drift else "No drift found"
    lines = [f"# Drift report", "", f"{verdict} (family-wise α {result.alpha:g}; a check counts when its p-value is "
             f"below α / {len(result.signals)} and its effect reaches its floor).", "",
             f"- reference: {result.reference['source']} ({result.reference['n']} texts)",
             f"- current: {result.current['source']} ({result.current['n']} texts)", "",
             "| check | drift | p-value | effect | floor | what changed |", "|---|---|---|---|---|---|"]
    lines += [f"| {s.name} | {'yes' if s.drift else 'no'} | {s.p_value:.2g} | {s.effect:.4g} | {s.floor:g} | "
              f"{s.summary.replace('|', '/')} |" for s in result.signals]
    lines += [""] + [f"Note: {n}." for n in result.notes] + [""] + [f"![{p}]({p})" for p in result.plots]
    with atomic_file(folder / "report.md") as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n", encoding="utf-8")
    with atomic_file(folder / "drift.json") as tmp:
        Path(tmp).write_text(json.dumps(result.to_dict(), indent=2, default=float) + "\n", encoding="utf-8")
    return folder / "report.md"


def run_drift(model: str | Path, reference: str | Path | None = None, *, current: str | Path | None = None,
              db: str | None = None, served_name: str | None = None, since: str | None = None,
              until: str | None = None, text_column: str = "text", output: str | Path | None = None,
              alpha: float = 0.05, threshold: float | None = None, max_texts: int = 1000,
              permutations: int = 500, seed: int = 0) -> DriftResult:
    """Score the reference file (default: the validation texts stored in the model) and the
    current file (or the logged predictions), compare, and write the report to ``output``
    (when given).

    Raises:
        DomainfitError: neither or both of ``current`` and ``db``; a bad date; no texts.
    """
    from ..inference import Predictor
    from ..stores import parse_since

    if (current is None) == (db is None):
        raise DomainfitError("give the current texts: --current FILE or --db URL (the prediction log), one of them.")
    if not 0 < alpha < 1:
        raise DomainfitError(f"--alpha must be between 0 and 1, not {alpha}.")
    start, end = parse_since(since), parse_since(until)
    cur_texts = read_texts(current, text_column) if current is not None else None
    predictor = Predictor(model)
    notes: list[str] = []
    if reference is None:
        from ..artifact import read_parity_sample

        ref_texts = [r["text"] for r in read_parity_sample(predictor.path, limit=100_000) if r.get("text")]
        if not ref_texts:
            raise ConfigError(f"{model} stores no validation texts: pass --reference FILE (held-out texts of the "
                              "training data).")
        reference = f"{model} (its {len(ref_texts)} stored validation texts)"
        notes.append("the reference is the model's stored validation sample; a larger held-out file "
                     "(--reference) makes the checks more sensitive")
    else:
        ref_texts = read_texts(reference, text_column)
    ref = scored_set(predictor, ref_texts, "reference", str(reference), notes=notes)
    if cur_texts is not None:
        cur = scored_set(predictor, cur_texts, "current", str(current), notes=notes)
    else:
        cur = logged_set(db, served_name or Path(model).name, start, end, predictor, notes=notes)
    result = compare(ref, cur, alpha=alpha, threshold=threshold, max_texts=max_texts, permutations=permutations,
                     seed=seed, notes=notes)
    if output is not None:
        write_report(result, ref, cur, output)
    return result
