"""Scoring a model on labelled data, and the report it writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.ui import escape, say
from ..data import ColumnSpec, check_eval_labels, load_dataset
from ..tasks import Scored

__all__ = ["evaluate", "write_task_report", "headline"]


def headline(metrics: dict) -> dict:
    """The numbers of a metrics dict (for the manifest): no per-class tables."""
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) or k == "primary_metric"}


def write_task_report(folder: Path, task, examples: list, labels: list[str], scored: Scored, title: str) -> Path:
    """Write ``report/`` for a scored set, laid out as the task says (``Task.report_data``)."""
    from ..evaluation import write_report

    return write_report(folder, metrics=scored.metrics, title=title, **task.report_data(examples, scored, labels))


def evaluate(model_path: str | Path, data: Any, *, text_column: str | None = None, label_column: str | None = None,
             text_pair_column: str | None = None, report: bool = True, on_bad_rows: str = "error",
             rerank: str | Path | None = None, candidates: int = 20) -> dict:
    """Evaluate an artifact on labelled data; writes ``report/`` into the artifact.

    Args:
        model_path: the artifact folder.
        data: a file path, DataFrame or list of dicts.
        text_column / label_column / text_pair_column: default to the ones used in training.
        report: also write ``report/`` (metrics.json, report.md, plots).
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
        write_task_report(Path(model_path) / "report", predictor.task, ds.examples, predictor.labels, scored,
                          f"Evaluation on {ds.source}")
    return scored.metrics
