"""Scoring a model on labelled data, and the report it writes."""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

from ..artifact.evaluations import evaluation_folder
from ..core.errors import DomainfitError
from ..core.io import staged_folder
from ..core.ui import escape, say
from ..data import ColumnSpec, check_eval_labels, load_dataset
from ..tasks import Scored

__all__ = ["evaluate", "write_task_report", "headline"]


def headline(metrics: dict) -> dict:
    """The numbers of a metrics dict (for the manifest): no per-class tables."""
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) or k == "primary_metric"}


MISTAKES_EXPLAINED = 20
"""How many of the most confident mistakes ``report/explanations.html`` explains."""


def write_task_report(folder: Path, task, examples: list, labels: list[str], scored: Scored, title: str,
                      source: str | None = None, predictor=None) -> Path:
    """Write ``report/`` for a scored set, laid out as the task says (``Task.report_data``);
    ``source`` is the file the examples' line numbers refer to. With the ``predictor`` of a
    single-label model (classification, pair classes), ``explanations.html`` shows its most
    confident mistakes with the words that decided them."""
    from ..evaluation import write_report

    out = write_report(folder, metrics=scored.metrics, title=title, source=source,
                       **task.report_data(examples, scored, labels))
    if predictor is not None:
        explain_mistakes(folder, predictor, examples, scored, title)
    return out


def explain_mistakes(folder: Path, predictor, examples: list, scored: Scored, title: str) -> Path | None:
    """``folder/explanations.html`` for single-label models (None for other tasks)."""
    from ..evaluation.explanations import EXPLANATIONS_FILE, write_explanations_html
    from ..inference.explain import supported_methods

    if not task_is_single_label(predictor.task) or not supported_methods(predictor):
        return None
    wrong = [(n, p) for n, (e, p) in enumerate(zip(examples, scored.predictions))
             if e.label is not None and str(e.label) != str(p.get("label"))]
    wrong.sort(key=lambda item: -float(item[1].get("score") or 0.0))
    cases = []
    for n, prediction in wrong[:MISTAKES_EXPLAINED]:
        e = examples[n]
        record = predictor.explain(e.text, target=prediction["label"],
                                   pairs=e.text_pair if predictor.task.needs_pair else None)[0]
        cases.append({**record, "gold": e.label, "line": e.line})
    predictor.add_evidence(cases, 3)
    return write_explanations_html(Path(folder) / EXPLANATIONS_FILE, cases, f"Mistakes explained: {title}")


def task_is_single_label(task) -> bool:
    """A task whose examples carry one label among the model's labels."""
    return task.model_kind == "sequence" and not task.cannot_predict and (
        task.name == "classification" or (task.name == "pair" and task.variant == "classification"))


def evaluate(model_path: str | Path, data: Any, *, text_column: str | None = None, label_column: str | None = None,
             text_pair_column: str | None = None, report: bool = True, on_bad_rows: str = "error",
             rerank: str | Path | None = None, candidates: int = 20, report_dir: str | Path | None = None) -> dict:
    """Evaluate an artifact on labelled data; writes a report of its own.

    Args:
        model_path: the artifact folder.
        data: a file path, DataFrame or list of dicts.
        text_column / label_column / text_pair_column: default to the ones used in training.
        report: also write a report (metrics.json, report.md, plots, and evaluation.json with
            the data's fingerprint), into ``report_dir``, by default a new folder
            :func:`evaluation_folder` names (the training run's ``report/`` is never replaced).
        rerank: retrieval only: a pair model that reorders the top ``candidates``.

    Returns:
        The metrics dict (keys per task, e.g. ``accuracy`` and ``macro_f1``; ``precision``,
        ``recall``, ``f1`` for token classification; ``recall@1``, ``mrr@10``... for
        retrieval). Retrieval data pairs each query with its relevant document: with an
        index in the artifact, corpus ids (several as ``a|b``) or exact document texts;
        without one, document texts (the corpus is then the distinct documents of the data).

    Example:
        >>> evaluate("my-model", "test.csv")["accuracy"]                  # doctest: +SKIP
        0.93
    """
    from ..inference import Predictor

    dest = Path(report_dir) if report_dir is not None else evaluation_folder(model_path, data)
    if report and dest.exists() and any(dest.iterdir()) and not (dest / "evaluation.json").is_file():
        raise DomainfitError(f"{dest} holds files an evaluation did not write; give an empty or new --report-dir.")
    predictor = Predictor(model_path)
    trained = predictor.manifest.get("config", {}).get("data", {})
    columns = ColumnSpec(text_column or trained.get("text_column", "text"),
                         label_column or trained.get("label_column", "label"),
                         text_pair_column or trained.get("text_pair_column"))
    ds = load_dataset(data, task=predictor.task.name, columns=columns, on_bad_rows=on_bad_rows,
                      tokenizer=predictor.tokenizer, max_length=predictor.max_length)
    unseen = check_eval_labels(predictor.labels, ds) if predictor.labels else []
    for w in ds.warnings + [str(u) for u in unseen]:
        say(f"[yellow]warning:[/] {escape(w)}")
    reranker = Predictor(rerank) if rerank is not None else None
    scored = predictor.task.score(predictor.model, predictor.tokenizer, ds.examples, predictor.labels,
                                  predictor.max_length, index=predictor.index, reranker=reranker,
                                  candidates=candidates)
    if report:
        record = {"data": ds.source, "data_sha256": ds.fingerprint, "rows": len(ds.examples), "unk_share": ds.unk_share,
                  "at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                  "metrics": {k: v for k, v in scored.metrics.items() if isinstance(v, (int, float, str))}}
        with staged_folder(dest) as staging:  # a crash leaves no half-written report
            write_task_report(staging, predictor.task, ds.examples, predictor.labels, scored,
                              f"Evaluation on {ds.source}", ds.source, predictor=predictor)
            (staging / "evaluation.json").write_text(json.dumps(record, indent=2, default=str) + "\n",
                                                      encoding="utf-8")
    return scored.metrics
