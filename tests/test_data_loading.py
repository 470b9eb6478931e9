"""Reading every input format, label parsing, bad input and the bad-row policy."""

from __future__ import annotations

import csv
import hashlib
import json
import tracemalloc

import pandas as pd
import pytest

from domainfit.data import ColumnSpec, SkippedRow, load_dataset, read_rows, write_skipped
from domainfit.core.errors import ConfigError, DataError, DomainfitError


def write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def only_problem(err: pytest.ExceptionInfo):
    assert len(err.value.problems) == 1, err.value.problems
    return err.value.problems[0]


# --- formats -------------------------------------------------------------------------


def test_csv_lines_start_at_2_and_multiline_records_keep_their_first_line(tmp_path):
    path = write(tmp_path / "d.csv", 'text,label\nhello,a\n"two\nlines",b\n\nlast,c\n')
    rows = list(read_rows(path))
    assert rows == [(2, {"text": "hello", "label": "a"}), (3, {"text": "two\nlines", "label": "b"}),
                    (6, {"text": "last", "label": "c"})]


def test_tsv_and_byte_order_mark(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_bytes("\ufefftext\tlabel\nhi, there\ta\n".encode("utf-8"))
    assert list(read_rows(path)) == [(2, {"text": "hi, there", "label": "a"})]


def test_jsonl_lines_count_from_1_and_skip_blank_lines(tmp_path):
    path = write(tmp_path / "d.jsonl", '{"text": "a", "label": 1}\n\n{"text": "b", "label": "x"}\n')
    assert list(read_rows(path)) == [(1, {"text": "a", "label": 1}), (3, {"text": "b", "label": "x"})]
    data = load_dataset(path)
    assert data.labels == ["1", "x"]  # a JSON int label becomes its string
    assert [e.line for e in data.examples] == [1, 3]


def test_parquet_rows_count_from_1(tmp_path):
    path = tmp_path / "d.parquet"
    pd.DataFrame({"text": ["a", "b", "c"], "label": ["x", "y", "x"]}).to_parquet(path, row_group_size=2)
    assert [line for line, _ in read_rows(path)] == [1, 2, 3]
    assert load_dataset(path).labels == ["x", "y", "x"]


def test_dataframe_and_records_use_0_based_rows_and_none_for_nan():
    frame = pd.DataFrame({"text": ["a", "b", None], "label": [1.0, float("nan"), 2.0]})
    rows = list(read_rows(frame))
    assert rows[1] == (1, {"text": "b", "label": None})
    assert rows[2][1]["text"] is None
    records = [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}]
    data = load_dataset(records)
    assert data.source == "<records>" and [e.line for e in data.examples] == [0, 1]
    assert load_dataset(pd.DataFrame(records)).source == "<dataframe>"
    nullable = pd.DataFrame({"text": ["a", "b"], "label": pd.array([1, None], dtype="Int64")})
    assert list(read_rows(nullable)) == [(0, {"text": "a", "label": 1}), (1, {"text": "b", "label": None})]
    assert type(next(read_rows(nullable))[1]["label"]) is int


def test_fmt_overrides_the_extension(tmp_path):
    path = write(tmp_path / "data.txt", '{"text": "a", "label": "x"}\n')
    assert list(read_rows(path, fmt="jsonl")) == [(1, {"text": "a", "label": "x"})]
    with pytest.raises(DataError, match="cannot tell the format"):
        read_rows(path)


def test_fingerprint_is_sha256_of_file_bytes_or_of_records(tmp_path):
    path = write(tmp_path / "d.csv", "text,label\na,x\nb,y\n")
    assert load_dataset(path).fingerprint == hashlib.sha256(path.read_bytes()).hexdigest()
    records = [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}]
    first = load_dataset(records).fingerprint
    assert first == load_dataset([dict(r) for r in records]).fingerprint
    assert first != load_dataset([records[0], {"text": "b", "label": "z"}]).fingerprint


def test_read_rows_streams_a_large_csv_in_bounded_memory(tmp_path):
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8") as f:
        f.write("text,label\n")
        f.writelines(f"this is example number {i},label_{i % 7}\n" for i in range(200_000))
    tracemalloc.start()
    try:
        count = sum(1 for _ in read_rows(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 200_000
    assert peak < 2 * 1024 * 1024  # the file is ~7 MB; holding it would need far more


# --- bad input -----------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(DataError) as err:
        read_rows(tmp_path / "nope.csv")
    problem = only_problem(err)
    assert problem.line is None and "no such file" in problem.reason


@pytest.mark.parametrize("name, content", [("e.csv", ""), ("h.csv", "text,label\n"), ("e.jsonl", "\n\n")])
def test_empty_file(tmp_path, name, content):
    path = write(tmp_path / name, content)
    with pytest.raises(DataError, match="empty"):
        list(read_rows(path))


def test_non_utf8_bytes_report_their_line(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b"text,label\nfine,a\nalso fine,b\ncaf\xe9,a\nok,b\n")
    with pytest.raises(DataError) as err:
        list(read_rows(path))
    problem = only_problem(err)
    assert problem.line == 4 and "UTF-8" in problem.reason
    skipped = load_dataset(path, on_bad_rows="skip").skipped
    assert [(s.line, s.values["label"]) for s in skipped] == [(4, "a")]


def test_malformed_json_line_and_non_object_line(tmp_path):
    path = write(tmp_path / "d.jsonl",
                 '{"text": "a", "label": "x"}\n["not", "an object"]\n{"text": oops}\n{"text": "b", "label": "y"}\n')
    with pytest.raises(DataError) as err:
        list(read_rows(path))
    problem = only_problem(err)
    assert problem.line == 2 and "not an object" in problem.reason
    with pytest.raises(DataError) as err:
        load_dataset(path)
    assert [(p.line, "valid JSON" in p.reason) for p in err.value.problems] == [(2, False), (3, True)]


@pytest.mark.parametrize("content", ['[{"text": "a", "label": "x"}]\n', '[\n  {"text": "a", "label": "x"}\n]\n'])
def test_a_json_document_is_explained(tmp_path, content):
    path = write(tmp_path / "d.json", content)
    with pytest.raises(DataError, match="not JSON Lines"):
        list(read_rows(path))


def test_row_with_extra_fields(tmp_path):
    path = write(tmp_path / "d.csv", "text,label\nhello, world,a\nok,b\n")
    with pytest.raises(DataError) as err:
        list(read_rows(path))
    assert only_problem(err).line == 2


def test_missing_column_names_it_and_lists_available_columns(tmp_path):
    path = write(tmp_path / "d.csv", "utterance,intent\nhi,a\n")
    with pytest.raises(DataError) as err:
        load_dataset(path, columns=ColumnSpec(text="utterances", label="intent"))
    problem = only_problem(err)
    assert problem.column == "utterances" and problem.line is None
    assert "'utterance', 'intent'" in problem.reason and "did you mean 'utterance'" in problem.reason


def test_label_column_not_needed_without_labels(tmp_path):
    path = write(tmp_path / "d.csv", "text\nhi\nthere\n")
    data = load_dataset(path, require_labels=False)
    assert data.labels == [None, None]


def test_unknown_task_and_policy():
    with pytest.raises(DomainfitError, match="unknown task"):
        load_dataset([{"text": "a", "label": "x"}], task="summarization")
    with pytest.raises(ConfigError, match="on_bad_rows"):
        load_dataset([{"text": "a", "label": "x"}], on_bad_rows="ignore")


# --- labels --------------------------------------------------------------------------


def test_classification_labels_are_stripped_strings(tmp_path):
    path = write(tmp_path / "d.csv", "text,label\na, 1 \nb,2\n")
    assert load_dataset(path).labels == ["1", "2"]
    assert load_dataset([{"text": "a", "label": 1.0}, {"text": "b", "label": 2}]).labels == ["1", "2"]


def test_multilabel_pipe_json_and_list(tmp_path):
    path = write(tmp_path / "d.csv", 'text,label\na, x | y |x|\nb,"[""y"", ""z""]"\n')
    assert load_dataset(path, task="multilabel").labels == [["x", "y"], ["y", "z"]]
    jsonl = write(tmp_path / "d.jsonl", '{"text": "a", "label": ["x", "y"]}\n{"text": "b", "label": ["z"]}\n')
    assert load_dataset(jsonl, task="multilabel").labels == [["x", "y"], ["z"]]
    parquet = tmp_path / "d.parquet"
    pd.DataFrame({"text": ["a", "b"], "label": [["x"], ["y", "x"]]}).to_parquet(parquet)
    assert load_dataset(parquet, task="multilabel").labels == [["x"], ["y", "x"]]


def test_multilabel_empty_set_is_a_problem(tmp_path):
    path = write(tmp_path / "d.csv", 'text,label\na,x|y\nb, | \nc,[]\n')
    with pytest.raises(DataError) as err:
        load_dataset(path, task="multilabel")
    assert [(p.line, p.column) for p in err.value.problems] == [(3, "label"), (4, "label")]
    assert "empty" in err.value.problems[0].reason


def test_regression_labels(tmp_path):
    path = write(tmp_path / "d.csv", "text,label\na, 3.5\nb,-1\nc,abc\nd,nan\ne,inf\n")
    with pytest.raises(DataError) as err:
        load_dataset(path, task="regression")
    assert [p.line for p in err.value.problems] == [4, 5, 6]
    data = load_dataset(path, task="regression", on_bad_rows="skip")
    assert data.labels == [3.5, -1.0]


# --- skip policy ---------------------------------------------------------------------


def test_skip_policy_records_and_writes_every_skipped_row(tmp_path):
    path = write(tmp_path / "d.csv", "text,label,reason\nok,a,r1\n,b,r2\nfine,,r3\ngood,b,r4\n  ,,r5\n")
    data = load_dataset(path, on_bad_rows="skip")
    assert data.texts == ["ok", "good"]
    assert [(s.line, s.column) for s in data.skipped] == [(3, "text"), (4, "label"), (6, "text, label")]
    assert "3 row(s) with problems were left out" in data.warnings[0]
    out = write_skipped(data.skipped, tmp_path / "out" / "skipped_rows.csv")
    with out.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["line", "column", "reason", "text", "label", "original_reason"]
    assert [r["line"] for r in rows] == ["3", "4", "6"]
    assert rows[2]["original_reason"] == "r5" and "text is missing" in rows[2]["reason"]


def test_write_skipped_writes_lists_as_json(tmp_path):
    rows = [SkippedRow(line=1, column=None, reason="bad", values={"text": "a", "label": ["x", "y"]})]
    out = write_skipped(rows, tmp_path / "s.csv")
    assert json.loads(next(csv.DictReader(out.open(encoding="utf-8")))["label"]) == ["x", "y"]


def test_skip_still_raises_when_no_rows_are_left(tmp_path):
    path = write(tmp_path / "d.csv", "text,label\n,a\n,b\n")
    with pytest.raises(DataError, match="No usable rows"):
        load_dataset(path, on_bad_rows="skip")


def test_one_numbering_for_errors_skipped_rows_examples_and_predict(tmp_path):
    """The header is line 1 and a record spanning lines carries its first line, everywhere:
    validation errors, skipped_rows.csv, Example.line (the report's Line column) and
    read_rows (predict's ``line``)."""
    path = tmp_path / "d.csv"
    path.write_text('text,label\nfirst,a\n"two\nline text",b\n,a\nlast,b\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"line 5") as err:
        load_dataset(path)
    assert "line 3" not in str(err.value)
    data = load_dataset(path, on_bad_rows="skip")
    assert [s.line for s in data.skipped] == [5]
    assert [(e.text, e.line) for e in data.examples] == [("first", 2), ("two\nline text", 3), ("last", 6)]
    assert [line for line, _ in read_rows(path)] == [2, 3, 5, 6]
