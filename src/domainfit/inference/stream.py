"""Predict over a file of any size: stream rows in, write JSONL or CSV out."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ..core.errors import ConfigError, DomainfitError
from ..core.io import atomic_file
from ..data import read_rows
from .predictor import Predictor

__all__ = ["predict_file"]


def predict_file(model_dir: str | Path, data: str | Path, output: str | Path, *, text_column: str | None = None,
                 top_k: int = 3, chunk_size: int = 1024, explain: bool = False, method: str = "auto") -> int:
    """Stream ``data`` through the model into ``output`` (``.jsonl`` or ``.csv``).

    Memory stays bounded by ``chunk_size`` rows whatever the file's size. The output is
    written to a temporary file and renamed at the end. Each output row holds the input's
    line number, the text, the predicted label and score, and the top-k labels with scores.
    For token classification, a JSONL line holds the text's ``entities``; a CSV has one row
    per entity (``line, text, start, end, type, score``: the entity's own text and its
    character offsets in the input text), and a text without entities has no row.

    With ``explain`` (JSONL only) each line also holds the ``explanation`` of
    :meth:`Predictor.explain` (``method``: see :mod:`domainfit.inference.explain`); an empty
    text gets none.

    Returns:
        The number of rows predicted.
    """
    predictor = Predictor(model_dir)
    if predictor.task.cannot_predict:
        raise DomainfitError(f"{model_dir}: {predictor.task.cannot_predict}")
    trained = predictor.manifest.get("config", {}).get("data", {})
    column = text_column or trained.get("text_column", "text")
    pair_column = trained.get("text_pair_column")
    output = Path(output)
    fmt = "csv" if output.suffix.lower() == ".csv" else "jsonl"
    if explain:
        from .explain import check_request

        if fmt == "csv":
            raise ConfigError("--explain writes a score per word, which a CSV row cannot hold: write .jsonl.")
        check_request(predictor, None, method)  # an unsupported method is refused before any row is read
    count = 0
    rows = _rows_with_text(data, column)
    with atomic_file(output) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        token_task = predictor.task.name == "token-classification"
        writer = (_EntityCsvOut(fh) if token_task else _CsvOut(fh, top_k)) if fmt == "csv" else None
        for row, pred in predictor.predict_stream(rows, column, pair_column, chunk_size, top_k):
            if "entities" in pred:  # token classification
                record = {"line": row["__line__"], "text": row[column], "entities": pred["entities"]}
            else:
                record = {"line": row["__line__"], "text": row[column], "label": pred["label"],
                          "score": pred["score"], "top_k": pred.get("top_k", [])}
            if explain and row[column].strip():
                pair = str(row.get(pair_column) or "") if pair_column else None
                record["explanation"] = predictor.explain(row[column], method=method, pairs=pair)[0]["explanation"]
            if writer:
                writer.write(record)
            else:
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count


def _rows_with_text(data, column):
    for line, row in read_rows(data):
        if column not in row:
            raise DomainfitError(f"{data}, line {line}: no column '{column}' (columns: {', '.join(row)}). "
                                 "Pass --text-column.")
        row = dict(row)
        row["__line__"] = line
        row[column] = "" if row[column] is None else str(row[column])
        yield row


class _CsvOut:
    def __init__(self, fh, top_k: int):
        self.top_k = top_k
        fields = ["line", "text", "label", "score"]
        for i in range(1, top_k + 1):
            fields += [f"label_{i}", f"score_{i}"]
        self.writer = csv.DictWriter(fh, fieldnames=fields)
        self.writer.writeheader()

    def write(self, record: dict) -> None:
        row = {k: record[k] for k in ("line", "text", "label", "score")}
        for i, item in enumerate(record["top_k"][: self.top_k], start=1):
            row[f"label_{i}"], row[f"score_{i}"] = item["label"], item["score"]
        self.writer.writerow(row)


class _EntityCsvOut:
    """Token classification as CSV: one row per entity found."""

    fields = ["line", "text", "start", "end", "type", "score"]

    def __init__(self, fh):
        self.writer = csv.DictWriter(fh, fieldnames=self.fields)
        self.writer.writeheader()

    def write(self, record: dict) -> None:
        for entity in record["entities"]:
            self.writer.writerow({"line": record["line"], "text": entity["text"], "start": entity["start"],
                                  "end": entity["end"], "type": entity["label"], "score": entity["score"]})
