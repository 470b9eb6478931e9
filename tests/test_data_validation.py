"""Validation: row problems, whole-file problems, warnings, split and evaluation checks."""

from __future__ import annotations

import pytest

from domainfit.data import (
    ColumnSpec, Dataset, Example, check_eval_labels, check_split_possible, load_dataset,
    validate_examples,
)
from domainfit.core.errors import DataError


def write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tiny_tokenizer(tmp_path_factory):
    from transformers import BertTokenizer

    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "b", "c"]
    return BertTokenizer(vocab={t: i for i, t in enumerate(tokens)})


def test_every_bad_row_is_reported_with_line_and_column(tmp_path):
    path = write(tmp_path / "d.csv", "q,a,label\nhi,there,x\n ,there,y\nhi2,,x\nhi3,there,\nok,fine,y\n")
    with pytest.raises(DataError) as err:
        load_dataset(path, columns=ColumnSpec(text="q", text_pair="a"))
    found = [(p.line, p.column) for p in err.value.problems]
    assert found == [(3, "q"), (4, "a"), (5, "label")]
    assert "--on-bad-rows skip" in str(err.value) and "skipped_rows.csv" in str(err.value)


def test_one_class_only_is_a_whole_file_problem_even_under_skip(tmp_path):
    path = write(tmp_path / "d.csv", "text,label\na,x\nb,x\nc,\n")
    with pytest.raises(DataError) as err:
        load_dataset(path, on_bad_rows="skip")
    [problem] = err.value.problems
    assert problem.line is None and problem.column == "label" and "same label 'x'" in problem.reason


def test_one_class_left_after_skipping_raises(tmp_path):
    path = write(tmp_path / "d.csv", "text,label\na,x\nb,x\n,y\n")
    with pytest.raises(DataError) as err:
        load_dataset(path)
    assert [p.line for p in err.value.problems] == [4]  # both labels count before skipping
    with pytest.raises(DataError, match="Only one label is left"):
        load_dataset(path, on_bad_rows="skip")


def test_conflicting_duplicates_report_every_line_and_skip_the_whole_group(tmp_path):
    path = write(tmp_path / "d.csv", "text,label\nsame,a\nother,b\nsame ,b\nsame,a\nmore,a\n")
    with pytest.raises(DataError) as err:
        load_dataset(path)
    problems = err.value.problems
    assert [p.line for p in problems] == [2, 4, 5]
    assert "line 4 'b'" in problems[0].reason and "line 5 'a'" in problems[0].reason
    data = load_dataset(path, on_bad_rows="skip")
    assert data.texts == ["other", "more"]
    assert [s.line for s in data.skipped] == [2, 4, 5]


def test_duplicates_with_the_same_label_are_fine(tmp_path):
    path = write(tmp_path / "d.csv", "text,label\nsame,a\nsame,a\nother,b\n")
    assert len(load_dataset(path)) == 3


def test_long_texts_are_a_warning_not_an_error(tmp_path, tiny_tokenizer):
    path = write(tmp_path / "d.csv", "text,label\na b,x\na b c a b c,y\nc,x\na a a a a,y\n")
    data = load_dataset(path, tokenizer=tiny_tokenizer, max_length=5)
    assert len(data) == 4
    assert data.warnings == [f"{path}: 2 texts are longer than the maximum of 5 tokens "
                             "and will be truncated (lines 3, 5)"]  # the tokenizer states no limit of its own
    tiny_tokenizer.model_max_length = 7
    warned = load_dataset(path, tokenizer=tiny_tokenizer, max_length=5).warnings[0]
    assert "--set training.max_length=7 (this model reads at most 7 tokens" in warned
    assert "1 of them are longer than the model's own limit of 7 tokens" in warned  # line 3: 8 tokens
    tiny_tokenizer.model_max_length = int(1e30)


def test_validate_examples_directly():
    examples = [Example("hi", "a", line=0), Example("", "b", line=1), Example("yo", None, line=2)]
    problems, warnings = validate_examples(examples, file="<records>")
    assert [(p.line, p.column) for p in problems] == [(1, "text"), (2, "label")]
    assert warnings == []
    problems, _ = validate_examples(examples, file="<records>", require_labels=False)
    assert [p.line for p in problems] == [1]


def test_regression_has_no_class_checks():
    examples = [Example("a", 1.0, line=2), Example("b", 1.0, line=3)]
    assert validate_examples(examples, task="regression") == ([], [])
    assert check_split_possible(examples, 0.2) == []


def test_check_split_possible_lists_small_classes():
    examples = [Example("a", "x", line=2), Example("b", "y", line=3), Example("c", "y", line=4),
                Example("d", ["z", "y"], line=5)]
    problems = check_split_possible(examples, 0.1, file="d.csv")
    assert [(p.line, p.column) for p in problems] == [(2, "label"), (5, "label")]
    assert "'x' has only 1 example (line 2)" in problems[0].reason
    assert check_split_possible(examples, 0.0) == []


def test_check_eval_labels_reports_unseen_labels_with_lines():
    test_set = Dataset(
        examples=[Example("a", "x", line=2), Example("b", "new", line=3), Example("c", "new", line=4)],
        source="test.csv", fingerprint="")
    [warning] = check_eval_labels(["x", "y"], test_set)
    assert (warning.file, warning.label, warning.lines, warning.column) == ("test.csv", "new", [3, 4], "label")
    assert "scored as errors" in str(warning) and "lines 3, 4" in str(warning)
    multi = Dataset([Example("a", ["x", "q"], line=1)], "t.jsonl", "")
    assert [w.label for w in check_eval_labels([["x"], ["y"]], multi)] == ["q"]


def test_unknown_tokens_are_measured_and_warned_about_with_the_pieces(tmp_path, tiny_tokenizer):
    known = write(tmp_path / "k.csv", "text,label\na b,x\nc a,y\n")
    data = load_dataset(known, tokenizer=tiny_tokenizer, max_length=16)
    assert data.unk_share == 0.0 and data.warnings == []
    mixed = write(tmp_path / "m.csv", "text,label\na 好 b,x\n好 吃 c,y\nc c c c c c c c c c,x\n")
    data = load_dataset(mixed, tokenizer=tiny_tokenizer, max_length=16)
    assert data.unk_share == pytest.approx(3 / 16)  # 好, 好, 吃 of 16 word pieces, special tokens not counted
    (warning,) = data.warnings
    assert "18.8% of the tokens are unknown" in warning and "--model" in warning
    if tiny_tokenizer.is_fast:
        assert "(most often: 好 吃)" in warning
    assert load_dataset(mixed).unk_share is None  # no tokenizer, nothing measured
    ner = tmp_path / "n.jsonl"
    ner.write_text('{"tokens": ["好", "a"], "tags": ["B-X", "O"]}\n', encoding="utf-8")
    assert load_dataset(ner, task="token-classification", tokenizer=tiny_tokenizer).unk_share == 0.5
