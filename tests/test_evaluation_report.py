"""write_report: the files each task produces, and that they hold what they should."""

from __future__ import annotations

import json

import numpy as np
import pytest

from domainfit.evaluation import (
    classification_metrics,
    multilabel_metrics,
    regression_metrics,
    write_report,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _assert_png(path):
    data = path.read_bytes()
    assert len(data) > 1000, f"{path.name} is suspiciously small"
    assert data[:8] == PNG_MAGIC


def _fake_classifier(n_labels: int, n: int, seed: int = 0):
    """Labels, texts, gold, probabilities and arg-max predictions of a ~70 % accurate model."""
    rng = np.random.default_rng(seed)
    labels = [f"intent_{i:02d}_with_a_longish_name" for i in range(n_labels)]
    gold_idx = rng.integers(0, n_labels, size=n)
    logits = rng.normal(size=(n, n_labels))
    logits[np.arange(n), gold_idx] += 2.5
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    gold = [labels[i] for i in gold_idx]
    pred = [labels[i] for i in probs.argmax(axis=1)]
    texts = [f"example text {i} | with a pipe\nand a newline" for i in range(n)]
    return labels, texts, gold, pred, probs


def test_classification_report_few_labels(tmp_path):
    labels, texts, gold, pred, probs = _fake_classifier(5, 120)
    gold[0] = "label_never_seen_in_training"
    metrics = classification_metrics(gold, pred, probs, labels)
    report = write_report(tmp_path / "report", task="classification", metrics=metrics,
                          texts=texts, y_true=gold, y_pred=pred, probs=probs, labels=labels)
    out = report.parent
    assert report == out / "report.md"
    assert json.loads((out / "metrics.json").read_text()) == metrics
    for name in ("confusion_matrix.png", "confused_pairs.png", "reliability.png"):
        _assert_png(out / name)
    md = report.read_text()
    for needle in ("## Headline metrics", "**accuracy** (primary)", "(worst F1 first)",
                   "## Confusions", "## Most confident mistakes", "## Calibration",
                   "(confusion_matrix.png)", "(confused_pairs.png)", "(reliability.png)",
                   f"{metrics['ece']:.4f}", "label_never_seen_in_training"):
        assert needle in md, needle
    # Pipes in texts are escaped and newlines folded, so table rows stay intact.
    assert "example text" in md and "\\| with a pipe and a newline" in md
    # Per-class table is sorted by F1, worst first.
    per_class = md.split("(worst F1 first)")[1].split("## Confusions")[0]
    rows = [ln for ln in per_class.splitlines() if ln.startswith("| ") and "Label" not in ln]
    f1s = [float(row.split("|")[4]) for row in rows]
    assert f1s == sorted(f1s) and len(rows) == 6


def test_classification_report_77_labels_uses_pairs_chart(tmp_path):
    out = tmp_path / "report"
    # A stale matrix from an earlier, smaller report must not survive.
    labels, texts, gold, pred, probs = _fake_classifier(5, 40)
    metrics = classification_metrics(gold, pred, probs, labels)
    write_report(out, task="classification", metrics=metrics, texts=texts, y_true=gold,
                 y_pred=pred, probs=probs, labels=labels)
    assert (out / "confusion_matrix.png").exists()

    labels, texts, gold, pred, probs = _fake_classifier(77, 400, seed=1)
    metrics = classification_metrics(gold, pred, probs, labels)
    report = write_report(out, task="classification", metrics=metrics, texts=texts,
                          y_true=gold, y_pred=pred, probs=probs, labels=labels, title="Banking77")
    assert not (out / "confusion_matrix.png").exists()
    _assert_png(out / "confused_pairs.png")
    _assert_png(out / "reliability.png")
    md = report.read_text()
    assert md.startswith("# Banking77")
    assert "77 labels are too many" in md and "(confusion_matrix.png)" not in md
    assert json.loads((out / "metrics.json").read_text()) == metrics


def test_classification_report_without_probs(tmp_path):
    gold, pred = ["a", "b", "b"], ["a", "a", "b"]
    metrics = classification_metrics(gold, pred, None, ["a", "b"])
    report = write_report(tmp_path, task="classification", metrics=metrics, texts=None,
                          y_true=gold, y_pred=pred)
    assert not (tmp_path / "reliability.png").exists()
    _assert_png(tmp_path / "confusion_matrix.png")
    md = report.read_text()
    assert "First mistakes (no probabilities given)" in md and "## Calibration" not in md


def test_multilabel_report(tmp_path):
    gold = [["billing", "refund"], ["billing"], ["tech"], []]
    pred = [["billing", "refund"], ["billing", "tech"], [], []]
    metrics = multilabel_metrics(gold, pred, ["billing", "refund", "tech"])
    report = write_report(tmp_path, task="multilabel", metrics=metrics, texts=["w", "x", "y", "z"],
                          y_true=gold, y_pred=pred)
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    md = report.read_text()
    assert "## Per-label results (worst F1 first)" in md
    assert "**micro_f1** (primary)" in md
    assert "| 1 | billing | billing, tech | x |" in md
    assert not list(tmp_path.glob("*.png"))


def test_regression_report(tmp_path):
    rng = np.random.default_rng(0)
    gold = rng.uniform(0, 5, size=60)
    pred = gold + rng.normal(scale=0.5, size=60)
    metrics = regression_metrics(gold, pred)
    texts = [f"review {i}" for i in range(60)]
    report = write_report(tmp_path, task="regression", metrics=metrics, texts=texts,
                          y_true=gold, y_pred=pred)
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    _assert_png(tmp_path / "residuals.png")
    md = report.read_text()
    assert "**r2** (primary)" in md and "| mae |" in md and "| lower |" in md
    worst = int(np.argmax(np.abs(pred - gold)))
    assert f"review {worst} |" in md.split("## Largest errors")[1].splitlines()[4]


def test_metrics_json_is_json_safe(tmp_path):
    metrics = {"accuracy": np.float32(0.5), "n": np.int64(2), "nll": float("nan"),
               "primary_metric": "accuracy"}
    write_report(tmp_path, task="classification", metrics=metrics, texts=None,
                 y_true=["a", "b"], y_pred=["a", "a"])
    assert json.loads((tmp_path / "metrics.json").read_text()) == {
        "accuracy": 0.5, "n": 2, "nll": None, "primary_metric": "accuracy"}
    assert not list(tmp_path.glob(".*.tmp"))


def test_write_report_input_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown task"):
        write_report(tmp_path, task="ner", metrics={}, texts=None, y_true=[], y_pred=[])
    with pytest.raises(ValueError, match="same length"):
        write_report(tmp_path, task="regression", metrics={}, texts=None, y_true=[1.0], y_pred=[])
    with pytest.raises(ValueError, match="labels are required"):
        write_report(tmp_path, task="classification", metrics={}, texts=None,
                     y_true=["a"], y_pred=["a"], probs=np.ones((1, 1)))


def test_example_rows_carry_the_file_line_numbers(tmp_path):
    gold, pred = ["a", "b", "b", "a"], ["a", "a", "b", "b"]
    metrics = classification_metrics(gold, pred, None, ["a", "b"])
    report = write_report(tmp_path, task="classification", metrics=metrics, texts=["w", "x", "y", "z"],
                          y_true=gold, y_pred=pred, lines=[2, 3, 5, 9], source="test.csv")
    md = report.read_text()
    assert "*Line* is the line number in `test.csv` (the header is line 1)" in md
    mistakes = md.split("## First mistakes")[1]
    assert "| Line | Confidence | True | Predicted | Text |" in mistakes
    assert "| 3 | — | b | a | x |" in mistakes and "| 9 | — | a | b | z |" in mistakes
    rows = write_report(tmp_path / "df", task="classification", metrics=metrics, texts=["w", "x", "y", "z"],
                        y_true=gold, y_pred=pred, lines=[0, 1, 2, 3], source="<dataframe>").read_text()
    assert "*Row* is the 0-based row of the dataframe" in rows and "| 1 | — | b | a | x |" in rows
    with pytest.raises(ValueError, match="same length"):
        write_report(tmp_path, task="classification", metrics=metrics, texts=None, y_true=gold, y_pred=pred,
                     lines=[2])


def test_token_report_shows_entities_and_counts_without_a_direction(tmp_path):
    from domainfit.tasks.token import entity_metrics

    gold_tags = [["B-PER", "O", "O", "B-LOC"], ["B-PER", "O"]]
    pred_tags = [["B-PER", "O", "O", "O"], ["B-PER", "O"]]
    metrics = entity_metrics(gold_tags, pred_tags)
    gold = [[("Anna", "PER", 0, 1), ("Oslo", "LOC", 3, 4)], [("Bo", "PER", 0, 1)]]
    pred = [[("Anna", "PER", 0, 1)], [("Bo", "PER", 0, 1)]]
    md = write_report(tmp_path, task="token-classification", metrics=metrics,
                      texts=["Anna lives in Oslo", "Bo sings"], y_true=gold, y_pred=pred,
                      lines=[4, 7], source="ner.conll").read_text()
    assert "| entities | 3 |  |" in md and "| predicted_entities | 2 |  |" in md
    assert "| f1 |" not in md and "| **f1** (primary) |" in md
    wrong = md.split("## Sentences with wrong entities")[1]
    assert "(first 10 of 1)" in wrong
    assert "| 4 | Anna [PER], Oslo [LOC] | Anna [PER] | Anna lives in Oslo |" in wrong
    assert "Bo sings" not in wrong and "B-PER" not in md
