"""Write an evaluation report folder: ``metrics.json``, ``report.md`` and PNG plots.

Files written, by task (a report folder holds one report: plot files from an earlier
report that this one does not produce are removed, so no stale picture survives):

================  =================================================================
classification    ``metrics.json``, ``report.md``, ``confused_pairs.png`` (always),
                  ``confusion_matrix.png`` (only up to 30 labels: beyond that a
                  matrix cannot carry readable tick labels, and the confused-pairs bar
                  chart carries the same signal), ``reliability.png`` (with ``probs``)
multilabel        ``metrics.json``, ``report.md``
regression        ``metrics.json``, ``report.md``, ``residuals.png``
token-cl.         ``metrics.json``, ``report.md`` (per entity type, sentences whose
                  entities are wrong; ``y_true``/``y_pred`` are per sentence lists of
                  ``(text, type, start, end)`` entities)
retrieval         ``metrics.json``, ``report.md`` (queries that found nothing relevant)
================  =================================================================

Sentence-pair tasks report as ``classification`` or ``regression``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..core.io import atomic_write_json, atomic_write_text, to_jsonable
from .analysis import most_confident_mistakes, top_confused_pairs
from .calibration import expected_calibration_error, reliability_bins
from .metrics import lower_is_better
from .plots import plot_confused_pairs, plot_confusion_matrix, plot_reliability, plot_residuals

__all__ = ["write_report", "CONFUSION_MATRIX_MAX_LABELS"]

CONFUSION_MATRIX_MAX_LABELS = 30
"""Above this many labels the report draws no confusion matrix, only the pairs chart."""

_TOP_PAIRS = 20
_TOP_MISTAKES = 10
_MAX_CELL_CHARS = 200
_PLOT_FILES = ("confusion_matrix.png", "confused_pairs.png", "reliability.png", "residuals.png")
_COUNT_KEYS = {"n", "n_unseen", "entities", "predicted_entities", "documents", "queries"}
"""Counts, not scores: the headline table gives them no "better" direction."""


def write_report(
    out_dir: Path | str,
    *,
    task: str,
    metrics: dict,
    texts: Sequence[str] | None,
    y_true: Sequence,
    y_pred: Sequence,
    probs: np.ndarray | None = None,
    labels: Sequence[str] | None = None,
    title: str = "Evaluation report",
    lines: Sequence[int] | None = None,
    source: str | None = None,
) -> Path:
    """Write metrics, a Markdown report and plots for one evaluation into ``out_dir``.

    Args:
        out_dir: report folder; created if missing.
        task: ``"classification"``, ``"multilabel"`` or ``"regression"``.
        metrics: the dict from the matching ``*_metrics`` function (any extra keys are
            kept); written as ``metrics.json`` with numpy values converted and NaN as null.
        texts: input texts, shape (n,), shown next to mistakes; ``None`` to omit them.
        y_true: gold labels (classification), label lists (multilabel) or values.
        y_pred: predictions in the same form.
        probs: classification only: shape (n, len(labels)), enables the calibration
            section and ranks mistakes by confidence.
        labels: the model's labels in ``probs`` column order (required with ``probs``).
        title: the report's heading.
        lines: where each example is in its data file, shape (n,): the file's line number
            (header = line 1), as validation errors, ``predict``'s ``line`` and
            ``skipped_rows.csv`` give it; example rows in the report show it. Without it,
            rows are numbered from 0 in input order.
        source: the file those line numbers refer to, named under the report's heading
            (``"<dataframe>"`` or ``"<records>"``: ``lines`` are 0-based rows).

    Returns:
        The path of ``report.md``.

    Raises:
        ValueError: on an unknown task, mismatched lengths, or ``probs`` without ``labels``.

    Example:
        >>> m = classification_metrics(gold, pred, probs, labels)  # doctest: +SKIP
        >>> write_report("run/report", task="classification", metrics=m, texts=texts,
        ...              y_true=gold, y_pred=pred, probs=probs, labels=labels)  # doctest: +SKIP
    """
    if task not in _SECTIONS:
        raise ValueError(f"unknown task {task!r}; expected one of {sorted(_SECTIONS)}")
    n = len(y_true)
    if len(y_pred) != n or (texts is not None and len(texts) != n) or (lines is not None and len(lines) != n):
        raise ValueError("texts, y_true, y_pred and lines must have the same length")
    if probs is not None and labels is None:
        raise ValueError("labels are required with probs: they give the column order")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = to_jsonable(metrics)
    in_memory = source is not None and source.startswith("<")  # a DataFrame or records: 0-based rows
    where = _Where(lines, in_memory)
    body, plots = _SECTIONS[task](out_dir, metrics, texts, y_true, y_pred, probs, labels, where)
    for name in set(_PLOT_FILES) - set(plots):
        (out_dir / name).unlink(missing_ok=True)
    atomic_write_json(out_dir / "metrics.json", metrics, strict=True)
    head = [f"# {title}", "", f"Task: **{task}** · {n} examples", ""]
    if lines is not None and in_memory:
        head += [f"*Row* is the 0-based row of the {source.strip('<>')}, as in validation errors.", ""]
    elif lines is not None:
        head += [f"*Line* is the line number in `{source or 'the data file'}` (the header is line 1), "
                 "as in validation errors, `predict` output and `skipped_rows.csv`.", ""]
    report = out_dir / "report.md"
    atomic_write_text(report, "\n".join(head + _headline(metrics) + body) + "\n")
    return report


def _classification(out_dir, metrics, texts, y_true, y_pred, probs, labels, where):
    y_true, y_pred = [str(t) for t in y_true], [str(p) for p in y_pred]
    model_labels = [str(lab) for lab in labels] if labels is not None else []
    classes = model_labels + sorted((set(y_true) | set(y_pred)) - set(model_labels))
    lines, plots = [], ["confused_pairs.png"]
    if metrics.get("n_unseen"):
        unseen = ", ".join(f"`{lab}`" for lab in metrics.get("unseen_labels", []))
        lines += [f"{metrics['n_unseen']} test examples carry labels the model never saw "
                  f"({unseen}); they count as errors.", ""]
    absent = metrics.get("absent_labels") or []
    if absent:
        shown = ", ".join(f"`{lab}`" for lab in absent[:20]) + (" ..." if len(absent) > 20 else "")
        lines += [f"{len(absent)} of the model's {len(model_labels)} classes are neither in this data nor "
                  f"predicted ({shown}); the macro averages leave them out, as scikit-learn does.", ""]
    lines += _per_class_section(metrics.get("per_class"), "Per-class results")
    lines += ["## Confusions", ""]
    if len(classes) <= CONFUSION_MATRIX_MAX_LABELS:
        plot_confusion_matrix(out_dir / "confusion_matrix.png", y_true, y_pred, classes)
        plots.append("confusion_matrix.png")
        lines += ["![Confusion matrix](confusion_matrix.png)", ""]
    else:
        lines += [f"{len(classes)} labels are too many for a readable confusion matrix; "
                  "the chart shows the most frequent mistakes instead.", ""]
    pairs = top_confused_pairs(y_true, y_pred, k=_TOP_PAIRS)
    plot_confused_pairs(out_dir / "confused_pairs.png", pairs)
    lines += ["![Top confused pairs](confused_pairs.png)", ""]
    lines += _table(["True", "Predicted", "Count"], pairs) if pairs else ["No mistakes.", ""]
    confidences = np.asarray(probs, dtype=float).max(axis=1) if probs is not None else None
    lines += _mistakes_section(texts, y_true, y_pred, confidences, where)
    if probs is not None:
        lines += _calibration_section(out_dir, metrics, probs, y_true, model_labels)
        plots.append("reliability.png")
    return lines, plots


def _multilabel(out_dir, metrics, texts, y_true, y_pred, probs, labels, where):
    lines = _per_class_section(metrics.get("per_class"), "Per-label results")
    wrong = [i for i in range(len(y_true)) if set(y_true[i]) != set(y_pred[i])]
    lines += [f"## Examples with a wrong label set (first {_TOP_MISTAKES})", ""]
    rows = [(where(i), ", ".join(sorted(y_true[i])) or "—", ", ".join(sorted(y_pred[i])) or "—",
             _text(texts, i)) for i in wrong[:_TOP_MISTAKES]]
    lines += _table([where.header, "True", "Predicted", "Text"], rows) if rows else ["None.", ""]
    return lines, []


def _regression(out_dir, metrics, texts, y_true, y_pred, probs, labels, where):
    gold, pred = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    plot_residuals(out_dir / "residuals.png", gold, pred)
    lines = ["## Predicted vs true", "", "![Predicted vs true](residuals.png)", ""]
    worst = sorted(range(len(gold)), key=lambda i: (-abs(pred[i] - gold[i]), i))
    rows = [(where(i), _fmt(gold[i]), _fmt(pred[i]), _fmt(abs(pred[i] - gold[i])), _text(texts, i))
            for i in worst[:_TOP_MISTAKES]]
    lines += [f"## Largest errors (top {_TOP_MISTAKES})", ""]
    lines += _table([where.header, "True", "Predicted", "Abs. error", "Text"], rows)
    return lines, ["residuals.png"]


def _token_classification(out_dir, metrics, texts, y_true, y_pred, probs, labels, where):
    rows = [(kind, _fmt(m["precision"]), _fmt(m["recall"]), _fmt(m["f1"]), m["support"], m["predicted"])
            for kind, m in metrics.get("per_type", {}).items()]
    lines = ["## Per entity type", ""]
    lines += _table(["Type", "Precision", "Recall", "F1", "Gold", "Predicted"], rows) if rows else ["No entities.", ""]
    wrong = [i for i in range(len(y_true)) if list(y_true[i]) != list(y_pred[i])]
    lines += [f"## Sentences with wrong entities (first {_TOP_MISTAKES} of {len(wrong)})", "",
              "Entities are shown as *text* [TYPE]; an entity counts only when its type and both ends match.", ""]
    shown = [(where(i), _entity_list(y_true[i]), _entity_list(y_pred[i]), _text(texts, i))
             for i in wrong[:_TOP_MISTAKES]]
    lines += _table([where.header, "True entities", "Predicted entities", "Text"], shown) if shown else ["None.", ""]
    return lines, []


def _entity_list(entities) -> str:
    """``[(text, type, start, end), ...]`` as ``Paris [LOC], Anna [PER]``."""
    return ", ".join(f"{text} [{kind}]" for text, kind, *_ in entities) or "—"


def _retrieval(out_dir, metrics, texts, y_true, y_pred, probs, labels, where):
    missed = [i for i in range(len(y_true)) if not set(y_pred[i][:10]) & set(y_true[i])]
    lines = [f"## Queries with no relevant document in the top 10 (first {_TOP_MISTAKES} of {len(missed)})", ""]
    rows = [(where(i), _text(texts, i), ", ".join(map(str, y_pred[i][:3]))) for i in missed[:_TOP_MISTAKES]]
    lines += _table([where.header, "Query", "Top 3 retrieved"], rows) if rows else ["None.", ""]
    return lines, []


_SECTIONS = {"classification": _classification, "multilabel": _multilabel,
             "regression": _regression, "token-classification": _token_classification,
             "retrieval": _retrieval}


def _headline(metrics: dict) -> list[str]:
    primary = metrics.get("primary_metric")
    keys = [k for k, v in metrics.items()
            if k != "primary_metric" and (v is None or isinstance(v, (int, float)))]
    keys.sort(key=lambda k: k != primary)  # stable: primary first, the rest as given
    rows = []
    for key in keys:
        name = f"**{key}** (primary)" if key == primary else key
        better = "" if key in _COUNT_KEYS else ("lower" if lower_is_better(key) else "higher")
        rows.append((name, _fmt(metrics[key]), better))
    return ["## Headline metrics", ""] + _table(["Metric", "Value", "Better"], rows)


def _per_class_section(per_class: dict | None, heading: str) -> list[str]:
    if not per_class:
        return []
    ranked = sorted(per_class.items(), key=lambda item: (item[1]["f1"], item[0]))
    rows = [(lab, _fmt(m["precision"]), _fmt(m["recall"]), _fmt(m["f1"]), m["support"])
            for lab, m in ranked]
    header = ["Label", "Precision", "Recall", "F1", "Support"]
    return [f"## {heading} (worst F1 first)", ""] + _table(header, rows)


class _Where:
    """An example's place for the report's tables: its file line, or its 0-based row."""

    def __init__(self, lines: Sequence[int] | None, rows: bool = False):
        self.lines = lines
        self.header = "Line" if lines is not None and not rows else "Row"

    def __call__(self, i: int) -> int | str:
        if self.lines is None:
            return i
        return "—" if self.lines[i] is None else int(self.lines[i])


def _mistakes_section(texts, y_true, y_pred, confidences, where) -> list[str]:
    ranked = confidences is not None
    conf = confidences if ranked else np.zeros(len(y_true))  # zeros: keep input order
    mistakes = most_confident_mistakes(texts, y_true, y_pred, conf, n=_TOP_MISTAKES)
    heading = "Most confident mistakes" if ranked else "First mistakes (no probabilities given)"
    rows = [(where(m["index"]), _fmt(m["confidence"]) if ranked else "—", m["true"], m["pred"],
             _text(texts, m["index"])) for m in mistakes]
    lines = [f"## {heading} (top {_TOP_MISTAKES})", ""]
    header = [where.header, "Confidence", "True", "Predicted", "Text"]
    return lines + (_table(header, rows) if rows else ["No mistakes.", ""])


def _calibration_section(out_dir, metrics, probs, y_true, labels) -> list[str]:
    probs = np.asarray(probs, dtype=float)
    confidences = probs.max(axis=1)
    predicted = np.asarray(labels, dtype=object)[probs.argmax(axis=1)]
    correct = predicted == np.asarray(y_true, dtype=object)
    ece = metrics.get("ece")
    if ece is None:
        ece = expected_calibration_error(confidences, correct)
    bins = reliability_bins(confidences, correct)
    plot_reliability(out_dir / "reliability.png", bins, ece)
    rows = [(f"{b['lower']:.2f}–{b['upper']:.2f}", b["count"], _fmt(b["mean_confidence"]),
             _fmt(b["accuracy"])) for b in bins if b["count"]]
    lines = ["## Calibration", "",
             f"Expected calibration error (ECE, 15 bins on the maximum probability): "
             f"**{ece:.4f}** (0 is perfect; bars below the diagonal mean over-confidence).",
             "", "![Reliability diagram](reliability.png)", ""]
    return lines + _table(["Confidence", "Examples", "Mean confidence", "Accuracy"], rows)


def _table(header: Sequence[str], rows: Sequence[Sequence]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines + [""]


def _cell(value) -> str:
    text = " ".join(str(value).split())  # newlines and runs of spaces break table rows
    if len(text) > _MAX_CELL_CHARS:
        text = text[: _MAX_CELL_CHARS - 1] + "…"
    return text.replace("|", "\\|")


def _fmt(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(value)
    return f"{float(value):.4f}"


def _text(texts, i: int) -> str:
    return "" if texts is None else texts[i]
